"""The training side of the domain that needs no torch: settings, prompt formats, run configs,
the events protocol, the run store. The job itself lives in ``studio/train`` (a child process)."""
