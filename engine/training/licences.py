"""Licence families of installed Python distributions, read from their dist-info.

The corpus manifest records where each file's licence comes from so a shipped model's
training data can be audited. Only the METADATA headers and RECORD are read: cheap.
"""

from __future__ import annotations

import re
from email.parser import HeaderParser
from pathlib import Path

FAMILIES = (  # first keyword found wins; LGPL before GPL, since "LGPL" contains "GPL"
    ("apache", "Apache"),
    ("bsd", "BSD"),
    ("mit", "MIT"),
    ("python software foundation", "PSF"),
    ("psf", "PSF"),
    ("lgpl", "LGPL"),
    ("lesser general public", "LGPL"),
    ("gpl", "GPL"),
    ("general public license", "GPL"),
    ("mozilla", "MPL"),
    ("mpl", "MPL"),
    ("isc", "ISC"),
    ("public domain", "public-domain"),
    ("unlicense", "public-domain"),
)


def licence_family(metadata_text: str) -> str:
    """A coarse family from a METADATA file's License-Expression, License and classifiers."""
    headers = HeaderParser().parsestr(metadata_text, headersonly=True)
    fields = [headers.get("License-Expression", ""), headers.get("License", "").split("\n")[0]]
    fields += [c for c in headers.get_all("Classifier", []) if c.startswith("License ::")]
    text = " ".join(fields).lower()
    for keyword, family in FAMILIES:
        if re.search(rf"\b{keyword}", text):  # word start: "mit" must not match "limited"
            return family
    return "unknown"


def _top_levels(dist_info: Path) -> set[str]:
    """The top-level folders and modules a distribution installed, from its RECORD."""
    try:
        lines = (dist_info / "RECORD").read_text(errors="replace").splitlines()
    except OSError:
        return set()
    tops = {line.split(",", 1)[0].split("/", 1)[0] for line in lines if line}
    return {t for t in tops if not t.endswith((".dist-info", ".data")) and t not in ("..", "")}


def site_packages_licences(site_packages: Path) -> dict[str, str]:
    """Map each top-level name under site_packages to its distribution's licence family."""
    licences: dict[str, str] = {}
    for dist_info in sorted(site_packages.glob("*.dist-info")):
        try:
            family = licence_family((dist_info / "METADATA").read_text(errors="replace"))
        except OSError:
            family = "unknown"
        for top in _top_levels(dist_info):
            licences.setdefault(top, family)
    return licences
