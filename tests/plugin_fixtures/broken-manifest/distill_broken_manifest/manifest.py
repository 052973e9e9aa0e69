"""A manifest built by a call: discovery reads manifests as data, so this one is refused."""

MANIFEST = dict(
    name="broken-manifest",
    version="0.1.0",
    studio=">=0.1",
    contributions={},
)
