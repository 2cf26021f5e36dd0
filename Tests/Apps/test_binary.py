"""The binary users copy to their VMs needs no Swift there (issue 15, "one binary for VMs").

tools/test runs every suite on the a67 that tools/build-agent relinks with the Swift runtime and
Foundation inside (--static-swift-stdlib), the same link as the release binary tools/up builds. Here:
ldd finds no Swift library in it; it runs with the Swift toolchain hidden from it; and every library
it does load comes with a package on the README's apt-get line for VMs (or with a package those bring).
"""

import os
import re
import subprocess
from pathlib import Path

from conftest import A67_BIN, REPO

SWIFT_LIBRARY = re.compile(r"libswift|libFoundation|lib_Foundation|libdispatch|libBlocksRuntime|libicu")


def ldd(binary):
    """{soname: resolved path or None} of every library the binary loads, the indirect ones too."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    libraries = {}
    for line in out.splitlines():
        match = re.match(r"\s*(\S+)\s+=>\s+(not found|\S+)", line)
        if match:
            libraries[match.group(1)] = None if match.group(2) == "not found" else match.group(2)
    return libraries


def needed(binary):
    """The sonames the binary names itself (its NEEDED entries)."""
    out = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def owner(path):
    """The Debian package that installed `path` (following a symlink, as /lib is /usr/lib)."""
    for candidate in (path, os.path.realpath(path)):
        result = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if result.returncode == 0:
            return result.stdout.split(":", 1)[0].strip()
    raise AssertionError(f"no package owns {path}")


def closure(packages):
    """The packages `apt-get install PACKAGES` brings (their Depends and Pre-Depends, recursively),
    from what dpkg knows of the installed ones; an alternative (a | b) counts each side."""
    seen, queue = set(), list(packages)
    while queue:
        package = queue.pop()
        if package in seen:
            continue
        seen.add(package)
        result = subprocess.run(["dpkg-query", "-W", "-f=${Depends}, ${Pre-Depends}", package], capture_output=True, text=True)
        if result.returncode != 0:
            continue
        for dependency in re.split(r"[,|]", result.stdout):
            name = dependency.strip().split(" ")[0].split(":")[0]
            if name:
                queue.append(name)
    return seen


def readme_vm_packages():
    """The packages of the README's apt-get line for VMs (in "Run your apps")."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Run your apps"):]
    match = re.search(r"apt-get install -y ([a-z0-9. +-]+?)\s+#", section)
    assert match, "README's \"Run your apps\" has no apt-get install -y line for VMs"
    return match.group(1).split()


def test_the_binary_needs_no_swift_library():
    libraries = ldd(A67_BIN)
    assert libraries, f"ldd found no libraries in {A67_BIN}: is it a dynamic executable?"
    missing = [name for name, path in libraries.items() if path is None]
    assert not missing, f"{A67_BIN} needs libraries this machine lacks: {missing}"
    swift = sorted(name for name in libraries if SWIFT_LIBRARY.search(name))
    assert not swift, f"{A67_BIN} loads Swift libraries, which a VM does not have (build it with tools/build-agent): {swift}"


def test_the_binary_runs_with_the_swift_toolchain_hidden():
    """In a mount namespace of its own, an empty tmpfs covers the toolchain's folder: a67 still
    starts, and reads its own version (Foundation, ICU, libcurl and zstd initialised)."""
    toolchain = Path(subprocess.run(["sh", "-c", "command -v swift"], capture_output=True, text=True).stdout.strip()).resolve()
    root = toolchain.parents[2]  # /opt/swift/usr/bin/swift(-driver) -> /opt/swift
    assert (root / "usr/lib/swift/linux").is_dir(), f"cannot find the Swift toolchain's folder from {toolchain}"
    binary = Path(A67_BIN).resolve()
    assert root not in binary.parents, "the binary under test lives inside the toolchain's folder"
    script = f'mount -t tmpfs none {root} && test ! -e {root}/usr/lib/swift && exec "$0" version'
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(binary)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"a67 did not start without the toolchain: {result.stderr[-2000:]}"
    assert result.stdout.startswith("a67"), result.stdout
    assert "OpenSSL" in result.stdout and "zstd" in result.stdout and "libcurl" in result.stdout, result.stdout


def test_every_library_it_loads_comes_with_the_readme_apt_line():
    packages = readme_vm_packages()
    brought = closure(packages)
    libraries = ldd(A67_BIN)
    for soname in needed(A67_BIN):
        if soname.startswith("ld-linux"):
            continue
        path = libraries.get(soname)
        assert path, f"ldd does not resolve {soname}"
        package = owner(path)
        assert package in brought, (f"{soname} comes from {package}, which `apt-get install {' '.join(packages)}` "
                                    "(README, Run your apps) does not bring")
