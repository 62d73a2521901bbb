"""``dipseg serve``: the annotation web page (:mod:`dipseg.web`) on a local port."""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
from pathlib import Path
from typing import Optional

import typer

from ..io import DEFAULT_MAX_PIXELS
from .common import user_errors

GRACEFUL_SECONDS = 5
"""uvicorn's graceful shutdown: fits are cancelled first, so their streams end well within it."""

LOOPBACK_NAMES = ["localhost", "127.0.0.1", "::1"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url(host: str, port: int, token: str | None = None) -> str:
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname() if token else "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/" + (f"?token={token}" if token else "")


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0 picks a free one).

    Raises
    ------
    OSError
        The address is in use or cannot be bound; the message says what to do.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve --host {host!r}: {exc.strerror}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port") from None
    sock.set_inheritable(True)
    return sock


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server that, on Ctrl+C, first cancels the running fits.

        Their event streams then end by themselves, so the graceful shutdown does not wait
        for open streams to time out.
        """

        def __init__(self, config, on_exit):
            super().__init__(config)
            self._on_exit = on_exit

        def handle_exit(self, sig, frame):
            try:
                asyncio.get_running_loop().call_soon_threadsafe(self._on_exit)
            except RuntimeError:
                self._on_exit()
            super().handle_exit(sig, frame)

    return Server


def _make_server(config, on_exit):
    return _server_class()(config, on_exit)


def serve_cmd(
    images: Optional[Path] = typer.Option(None, "--images", "-i", help="Folder of images to annotate (next / previous, progress)."),
    out: Path = typer.Option(Path("dipseg-out"), "--out", "-o", help="Where masks (<image>.png), labels (<image>_labels.png) and metadata go."),
    classes: Optional[Path] = typer.Option(None, "--classes", help="Text file of class names, one per line (default: the 21 VOC classes)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (default localhost only)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port (0 picks a free one)."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="DIPSEG preset of a Segment that names none (see `dipseg presets`); the page's Preset list offers every preset."),
    iterations: Optional[int] = typer.Option(None, "--iterations", "-n", min=1, help="Override the presets' steps."),
    working_size: Optional[int] = typer.Option(None, "--working-size", min=16, help="Override the preset's working resolution (longest side)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    workers: int = typer.Option(1, "--workers", min=1, max=64, help="Fits running at once."),
    queue: int = typer.Option(8, "--queue", min=0, max=10000, help="Fits that may wait; more get HTTP 429."),
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels", min=4, help="Largest image accepted (pixels)."),
    max_fit_pixels: Optional[int] = typer.Option(None, "--max-fit-pixels", min=4,
                                                 help="Larger images are fitted at a downscaled copy of this many pixels (default 2048x2048; bounds a fit's memory)."),
    max_upload_mb: float = typer.Option(25.0, "--max-upload-mb", min=0.001, help="Largest upload accepted (MiB)."),
    boxes: Optional[Path] = typer.Option(None, "--boxes", "-b",
                                         help="Boxes each image starts with: a COCO JSON of the folder's images, or a folder of <image stem>.xml (Pascal VOC), .json or .csv box files. An image's saved boxes come first. See docs/boxes.md."),
    tight_boxes: bool = typer.Option(False, "--tight-boxes", help="Those boxes touch their objects on every side, as detection data's do (the page's Tight boxes starts ticked)."),
    token: Optional[str] = typer.Option(None, "--token", envvar="DIPSEG_TOKEN",
                                        help="Access token (16+ characters); required from every client when --host is not localhost (default: a random one, printed in the URL)."),
) -> None:
    """Serve the annotation page: paint rough blobs, watch the mask form, save VOC masks."""
    with user_errors():
        import uvicorn

        from ..dip.device import resolve_device
        from ..dip.presets import get_preset
        from ..web.app import build_app
        from ..web.settings import DEFAULT_MAX_FIT_PIXELS, Settings, load_classes
        from ..io import IMAGE_SUFFIXES

        if images is not None and not images.is_dir():
            raise ValueError(f"--images folder not found: {images}" if not images.exists()
                             else f"--images must be a folder, got the file {images}")
        if preset is not None:
            get_preset(preset)
        resolve_device(device)
        optional = {"classes": load_classes(classes)} if classes is not None else {}
        local = _is_loopback(host)
        if token is not None and len(token) < 16:
            raise ValueError("--token must be at least 16 characters")
        if token is not None or not local:
            optional["token"] = token or secrets.token_urlsafe(18)
        settings = Settings(
            images_dir=images, out_dir=out, preset=preset,
            fit_overrides={"iterations": iterations, "working_size": working_size},
            max_upload_bytes=int(max_upload_mb * 1024 * 1024), max_pixels=max_pixels, max_fit_pixels=max_fit_pixels or DEFAULT_MAX_FIT_PIXELS,
            queue_size=queue, workers=workers, device=device, boxes=boxes, tight_boxes=tight_boxes,
            # beyond localhost the Host header says nothing; the token keeps strangers (and
            # DNS-rebinding pages, which lack its cookie) out
            allowed_hosts=tuple(LOOPBACK_NAMES) if local else None, require_token=not local, **optional,
        )
        application = build_app(settings)
        total = len(application.state.store)
        if images is not None and not total:
            raise ValueError(f"--images {images} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        try:
            settings.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(f"cannot create --out {out}: {exc.strerror or exc}") from None
        sock = bind_socket(host, port)
    actual_port = sock.getsockname()[1]
    url = _url(host, actual_port, settings.token if settings.require_token else None)
    if images is not None:
        typer.echo(f"dipseg: {total} images in {settings.images_dir}, masks saved to {settings.out_dir}")
        if settings.boxes is not None:
            typer.echo(f"dipseg: boxes from {settings.boxes}" + (" (tight)" if settings.tight_boxes else ""))
    else:
        typer.echo(f"dipseg: open or drop images in the page; masks saved to {settings.out_dir}")
    if settings.require_token:
        typer.echo(f"dipseg: warning: listening on {host}, reachable from other machines; every client needs "
                   "the token in this URL (plain HTTP: use it only on a network you trust)", err=True)
    typer.echo(f"dipseg: serving on {url}  (Ctrl+C stops)", nl=True)
    config = uvicorn.Config(application, log_level="warning", ws="none", timeout_graceful_shutdown=GRACEFUL_SECONDS)
    server = _make_server(config, application.state.jobs.shutdown)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        # uvicorn re-raises the Ctrl+C it handled once it has shut down; that is the normal way out
        pass
    finally:
        sock.close()
    typer.echo("dipseg: stopped")
