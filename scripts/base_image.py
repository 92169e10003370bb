"""The base image the kit's images are built on; prints its name.

    python3 scripts/base_image.py

The official `python:3.11-slim-bookworm` when Docker has it or can pull it. Where no image
registry answers (an air-gapped network, a mirror of Debian and PyPI only), a Debian 12 image
with Debian's own Python 3.11 is made from Debian packages instead (debootstrap, then
`docker import`), once: later runs find it. Progress goes to stderr, the name to stdout.

Only the standard library: it runs with the host's python3, before any virtual environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

OFFICIAL = "python:3.11-slim-bookworm"
DEBIAN = "offgrid-voice-kit/debian:bookworm"
# What the kit's Dockerfile needs from a base: Python 3.11 with venv, and the CA certificates.
PACKAGES = "python3,python3-venv,ca-certificates"
ROOT = Path(__file__).resolve().parent.parent


def setting(name: str, default: str) -> str:
    """A variable as the kit reads it: the environment first, then .env, then the default."""
    if os.environ.get(name):
        return os.environ[name]
    env_file = ROOT / ".env"
    lines = env_file.read_text().splitlines() if env_file.is_file() else []
    values = [line.split("=", 1)[1].strip() for line in lines if line.startswith(f"{name}=")]
    return values[-1] if values and values[-1] else default


# Their defaults, as scripts/compose_settings.py documents them (this runs in the system's Python,
# without the kit's packages; tests/unit/test_env_example.py checks the two agree).
MIRRORS = {
    "DEBIAN_MIRROR": "http://deb.debian.org/debian",
    "DEBIAN_SECURITY_MIRROR": "http://deb.debian.org/debian-security",
}
MIRROR = setting("DEBIAN_MIRROR", MIRRORS["DEBIAN_MIRROR"])
SECURITY_MIRROR = setting("DEBIAN_SECURITY_MIRROR", MIRRORS["DEBIAN_SECURITY_MIRROR"])
PULL_TIMEOUT = 600  # a slow link pulls ~50 MB; a black-holed registry must not hang the build


def say(message: str) -> None:
    print(f"base image: {message}", file=sys.stderr, flush=True)


def docker(*args: str, timeout: float | None = None, quiet: bool = True) -> bool:
    output = subprocess.DEVNULL if quiet else sys.stderr
    try:
        done = subprocess.run(["docker", *args], stdout=output, stderr=output, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def ensure_debootstrap() -> str:
    found = shutil.which("debootstrap", path=f"/usr/sbin:/sbin:{os.getenv('PATH', '')}")
    if found:
        return found
    if shutil.which("apt-get") is None:
        raise SystemExit(
            "base image: debootstrap is missing; install it from your distribution's packages"
        )
    say("installing debootstrap from the OS packages")
    subprocess.run(["apt-get", "update", "-qq"], check=True, stdout=sys.stderr)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "debootstrap"], check=True, stdout=sys.stderr
    )
    return "/usr/sbin/debootstrap"


def build_debian(name: str) -> None:
    """Debian 12 minbase with Python 3.11 and the latest security updates, imported as `name`.

    Runs as root (debootstrap and chroot need it)."""
    debootstrap = ensure_debootstrap()
    with tempfile.TemporaryDirectory(prefix="kit-rootfs-") as scratch:
        root = Path(scratch) / "rootfs"  # made by debootstrap, 0755 like any /
        # debootstrap's progress lines go to stderr, like ours.
        subprocess.run(
            [
                debootstrap,
                "--variant=minbase",
                f"--include={PACKAGES}",
                "bookworm",
                str(root),
                MIRROR,
            ],
            check=True,
            stdout=sys.stderr,
        )
        (root / "etc/apt/sources.list").write_text(
            f"deb {MIRROR} bookworm main\n"
            f"deb {MIRROR} bookworm-updates main\n"
            f"deb {SECURITY_MIRROR} bookworm-security main\n"
        )
        say("applying Debian's security updates")
        upgrade = "apt-get update -qq && apt-get upgrade -y -qq && apt-get clean"
        quiet = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        done = subprocess.run(
            ["chroot", str(root), "sh", "-c", upgrade], capture_output=True, text=True, env=quiet
        )
        if done.returncode:
            raise SystemExit(f"base image: apt-get upgrade failed:\n{done.stdout}{done.stderr}")
        # What a slim image leaves out: package lists, manuals, translations, logs.
        for pattern in (
            "var/lib/apt/lists/*",
            "usr/share/man/*",
            "usr/share/info/*",
            "usr/share/locale/*",
            "var/log/*.log",
            "var/cache/debconf/*-old",
        ):
            for path in root.glob(pattern):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        for path in (root / "usr/share/doc").rglob("*"):
            if path.is_file() and path.name != "copyright":
                path.unlink()
        changes = [
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            'CMD ["/bin/bash"]',
        ]
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["docker", "import", *(f"--change={c}" for c in changes), "-", name],
            stdin=tar.stdout,
            stdout=subprocess.DEVNULL,
        )
        tar.wait()
        if imported.returncode or tar.returncode:
            raise SystemExit(f"base image: docker import of {name} failed")


def resolve() -> str:
    """The base image's name: the official one, else the Debian one (made when missing)."""
    if not docker("info"):
        raise SystemExit("base image: the Docker engine does not answer (is dockerd running?)")
    if docker("image", "inspect", OFFICIAL):
        return OFFICIAL
    say(f"pulling {OFFICIAL} ...")
    if docker("pull", OFFICIAL, timeout=PULL_TIMEOUT, quiet=False):
        return OFFICIAL
    if docker("image", "inspect", DEBIAN):
        say(f"{OFFICIAL} cannot be pulled; using {DEBIAN}, made earlier from Debian packages")
        return DEBIAN
    say(
        f"{OFFICIAL} cannot be pulled (no image registry): making {DEBIAN} from Debian "
        f"packages with debootstrap (about a minute, once)"
    )
    if os.geteuid() == 0:
        build_debian(DEBIAN)
    else:
        # debootstrap and chroot need root: this one step runs under sudo.
        subprocess.run(["sudo", sys.executable, __file__, "--build"], check=True)
    return DEBIAN


def main() -> int:
    if sys.argv[1:] == ["--build"]:
        build_debian(DEBIAN)
    else:
        print(resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
