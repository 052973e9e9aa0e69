"""The training job: a child process (``python -m studio.train CONFIG.json``) that imports torch.

Nothing in the GUI process imports this package's submodules except by starting a process.
"""
