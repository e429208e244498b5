"""Everything that turns files into models and models into files, one concern per module.

    checkpoint   our training checkpoint (one torch.save'd dict), atomic writes, weight checks
    hub          the `save_pretrained` folder (config.json + safetensors), Hub ids
    model        `OASISModel` and `oasisgan.load` (a checkpoint or a folder -> a model)
    official     the official OASIS .pth files, both ways
    weights      auxiliary weight files (metrics, VGG) and the user cache folder
    pretrained   `from_pretrained`: any name or path -> a local model, built from
        registry     the names it knows (built-in + the user's registry file)
        cache        where converted models live on disk
        ledger       the sha256 of each archive
        download     resumable HTTP download
        archive      the official zip archives

Nothing here is imported by `import oasisgan`; import the module you need.
"""
