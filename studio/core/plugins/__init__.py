"""Plugins: installed distributions that add entries to the registries, found without running their code.

A distribution declares ``[project.entry-points."distill_studio.plugins"]`` whose value names a
manifest, a module-level dict of plain data (``"package.manifest:MANIFEST"``). Discovery reads
that dict from the module's source with :func:`ast.literal_eval` and never imports it; each
contribution names its code as ``"module:attr"``, imported on first use by the registry. A
plugin that is malformed, names a missing module or wants another studio version becomes a
record with its error; a disabled plugin is not registered at all, so its code is never imported.

    model.py      PluginRecord / Contribution: what was found, its state and errors (plain data)
    discovery.py  entry points -> manifests -> records; load_plugins() registers the enabled ones
    settings.py   which plugins the user disabled (config_dir()/plugins.json), remembered
    boundary.py   PluginError and the guard that turns a plugin's exception into one, recorded
    install.py    install a plugin into the app's environment, refusing conflicts with its pins
    cli.py        `distill-studio plugins list|enable|disable|install`
"""
