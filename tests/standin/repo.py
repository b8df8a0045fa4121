"""Throwaway git checkouts of the project with a ``file://`` origin, which clearml-agent can clone."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_GIT_IDENTITY = ["-c", "user.name=standin-tests", "-c", "user.email=standin-tests@localhost",
                 "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"]


@dataclass
class GitCheckout:
    """A working copy (``work``) whose ``origin`` is a local bare repository (``remote``)."""

    work: Path
    remote: str
    commit: str


def git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(["git", *_GIT_IDENTITY, *args], cwd=cwd, env=env, check=True,
                         capture_output=True, text=True, timeout=120)
    return out.stdout.strip()


def _worktree_files(source: Path) -> list[str]:
    """Tracked and untracked-but-not-ignored files of the source checkout."""
    listing = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=source)
    return [f for f in listing.split("\0") if f and (source / f).is_file()]


def make_project_clone(dest: Path, source: Path = PROJECT_ROOT, extra_files: dict[str, str] | None = None,
                       snapshot_worktree: bool = True, env: dict[str, str] | None = None) -> GitCheckout:
    """Bare-clone ``source`` into ``dest/origin.git``, check it out at ``dest/work`` and push one commit
    holding the source's current working tree (so uncommitted work is tested too) plus ``extra_files``."""
    dest.mkdir(parents=True, exist_ok=True)
    bare, work = dest / "origin.git", dest / "work"
    git("clone", "--quiet", "--bare", "--no-hardlinks", str(source), str(bare), cwd=dest, env=env)
    remote = bare.as_uri()
    git("clone", "--quiet", remote, str(work), cwd=dest, env=env)
    if snapshot_worktree:
        for rel in _worktree_files(source):
            target = work / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / rel, target)
    for rel, text in (extra_files or {}).items():
        target = work / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git("add", "-A", cwd=work, env=env)
    if git("status", "--porcelain", cwd=work, env=env):
        git("commit", "--quiet", "--no-verify", "-m", "test snapshot", cwd=work, env=env)
        git("push", "--quiet", "origin", "HEAD", cwd=work, env=env)
    return GitCheckout(work=work, remote=remote, commit=git("rev-parse", "HEAD", cwd=work, env=env))
