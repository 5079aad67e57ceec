"""Train and serve a Rasa NLU model from the locale examples (for the benchmark and the tests).

Rasa 3.6 needs Python < 3.11, so it lives in its own virtual environment
(``.rasa-venv`` at the repository root, prepared by ``bot/understanding/rasa_env.sh``;
``RAPPORT_RASA_VENV`` overrides the location).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from bot.understanding.rasa import export_project

REPO = Path(__file__).resolve().parents[2]


def rasa_venv() -> Path:
    return Path(os.environ.get("RAPPORT_RASA_VENV") or REPO / ".rasa-venv")


def rasa_executable() -> Path | None:
    """The ``rasa`` command of the Rasa venv, or None when it is not installed."""
    exe = rasa_venv() / "bin" / "rasa"
    return exe if exe.exists() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"TF_CPP_MIN_LOG_LEVEL": "3", "RASA_TELEMETRY_ENABLED": "false", "SQLALCHEMY_SILENCE_UBER_WARNING": "1"})
    return env


def train(project: Path, *, epochs: int = 100, timeout_s: float = 600) -> Path:
    """Export the project into ``project`` and train an NLU model; returns the model file."""
    exe = rasa_executable()
    if exe is None:
        raise FileNotFoundError(f"no Rasa installation at {rasa_venv()} (run bot/understanding/rasa_env.sh)")
    export_project(project, epochs=epochs)
    out = project / "models"
    subprocess.run(
        [str(exe), "train", "nlu", "--config", "config.yml", "--nlu", "data/nlu.yml", "--out", str(out),
         "--fixed-model-name", "rapport-nlu"],
        cwd=project, env=_env(), check=True, timeout=timeout_s, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    model = out / "rapport-nlu.tar.gz"
    if not model.exists():
        raise FileNotFoundError(f"rasa train produced no model at {model}")
    return model


class RasaServer:
    """``rasa run --enable-api`` on 127.0.0.1 for one model; a context manager."""

    def __init__(self, model: Path, port: int | None = None, log: Path | None = None) -> None:
        self.model = model
        self.port = port or free_port()
        self.log = log or model.parent / "rasa-server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, ready_timeout_s: float = 180) -> RasaServer:
        exe = rasa_executable()
        if exe is None:
            raise FileNotFoundError(f"no Rasa installation at {rasa_venv()}")
        logf = self.log.open("wb")
        self.proc = subprocess.Popen(
            [str(exe), "run", "--enable-api", "-i", "127.0.0.1", "-p", str(self.port), "-m", str(self.model)],
            cwd=self.model.parent, env=_env(), stdout=logf, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rasa server exited with {self.proc.returncode}; see {self.log}")
            try:
                with urllib.request.urlopen(self.url + "/status", timeout=2) as resp:
                    if resp.status == 200 and b"model_file" in resp.read():
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"rasa server not ready after {ready_timeout_s:.0f}s; see {self.log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def __enter__(self) -> RasaServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
