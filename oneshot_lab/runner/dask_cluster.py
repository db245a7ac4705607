"""Where a Dask sweep runs: a LocalCluster that only this sweep can reach, or a user's scheduler with their security.

The LocalCluster listens on 127.0.0.1 only, with TLS on every connection (scheduler, nannies, workers), and both
ends must present the certificate made for this one cluster (`distributed.Security.temporary()`, or the same made
by the `openssl` command where the `cryptography` package is missing; kept in memory), so any other client is
refused. Dask starts an HTTP server on every node whatever `dashboard_address` says (it serves Prometheus metrics,
/health, /info and /json pages, by default on port 8787); without `dashboard` those servers serve nothing and listen
on a random loopback port. A user's scheduler is reached with the security settings Dask's configuration gives
(`distributed.comm.tls.*`, `distributed.client.security-loader`) or the `Security` passed in Python.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from .spec import SpecError

if TYPE_CHECKING:
    from distributed import Client, Security

NO_HTTP = {"distributed.scheduler.http.routes": [], "distributed.worker.http.routes": []}
DASHBOARD = re.compile(r"^(?:(?P<host>[\w.\-]+|\[[0-9a-fA-F:.]+\])?:)?(?P<port>\d{1,5})$")
TLS_HELP = ("set distributed.comm.tls.ca-file, distributed.comm.tls.client.cert and distributed.comm.tls.client.key "
            "in Dask's configuration (see docs/sweeps.md)")


def dashboard_address(dashboard: str | int | None) -> str | None:
    """`dashboard` (a port, ':port' or 'host:port') as 'host:port', on 127.0.0.1 unless a host is named."""
    if dashboard is None:
        return None
    match = DASHBOARD.match(str(dashboard).strip())
    if not match or not 0 <= int(match["port"]) <= 65535:
        raise SpecError(f"dashboard must be a port or host:port such as 127.0.0.1:8787, got {dashboard!r}")
    return f"{match['host'] or '127.0.0.1'}:{match['port']}"


def check(scheduler: str | None, security: Any, dashboard: str | int | None) -> None:
    """SpecError, before any work, for settings a Dask sweep cannot run with (see `client`)."""
    if scheduler is None:
        if security is not None:
            raise SpecError("security= is for a scheduler of your own (scheduler=ADDRESS); a LocalCluster uses "
                            "TLS credentials made for it")
        dashboard_address(dashboard)
        if importlib.util.find_spec("cryptography") is None and shutil.which("openssl") is None:
            raise SpecError("a local Dask cluster needs TLS credentials of its own, made with the `cryptography` "
                            "package or the `openssl` command, and neither is installed (pip install cryptography)")
        return
    if dashboard is not None:
        raise SpecError(f"a dashboard is served by the scheduler at {scheduler}, not by this sweep; "
                        f"dashboard applies to a LocalCluster only")
    from distributed import Security

    if security is not None and not isinstance(security, Security):
        raise SpecError(f"security must be a distributed.Security, got {type(security).__name__}")
    if scheduler.startswith("tls://") and security is None:
        import dask

        if not dask.config.get("distributed.client.security-loader", None):
            security = Security()
    if scheduler.startswith("tls://") and security is not None and not (security.tls_ca_file and
                                                                          security.tls_client_cert):
        raise SpecError(f"the scheduler at {scheduler} speaks TLS, but no client certificate is configured: "
                        f"{TLS_HELP}, or pass security= in Python")


def temporary_security() -> Security:
    """Security whose only accepted certificate is one made now for one cluster: TLS required on every connection."""
    from distributed import Security

    try:
        return Security.temporary()
    except ImportError:  # no `cryptography`: the same self-signed key and certificate from the openssl command
        pass
    with tempfile.TemporaryDirectory(prefix="oneshot-lab-tls-") as private:  # mode 0700, removed at once
        key, cert = Path(private, "key.pem"), Path(private, "cert.pem")
        subprocess.run([shutil.which("openssl") or "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-batch", "-days", "365", "-subj", "/CN=dask-internal", "-keyout", str(key), "-out",
                        str(cert)], check=True, capture_output=True, timeout=120)
        key_text, cert_text = key.read_text(), cert.read_text()
    return Security(require_encryption=True, tls_ca_file=cert_text, tls_client_key=key_text,
                    tls_client_cert=cert_text, tls_scheduler_key=key_text, tls_scheduler_cert=cert_text,
                    tls_worker_key=key_text, tls_worker_cert=cert_text)


@contextlib.contextmanager
def client(workers: int, scheduler: str | None = None, security: Security | None = None,
           dashboard: str | int | None = None) -> Iterator[Client]:
    """A Dask client of the scheduler at `scheduler` (with `security`, else Dask's configured settings), or of a
    LocalCluster of `workers` processes that only this client can reach (a `dashboard` only if one is asked for)."""
    import dask
    from distributed import Client, LocalCluster

    check(scheduler, security, dashboard)
    if scheduler:
        with Client(scheduler, security=security) as user_client:
            if not user_client.security.require_encryption and not scheduler.startswith("tls://"):
                warnings.warn(f"the Dask scheduler at {scheduler} takes unencrypted connections from anyone who can "
                              f"reach it; see docs/sweeps.md for TLS", stacklevel=3)
            yield user_client
        return
    local_security, address = temporary_security(), dashboard_address(dashboard)
    with dask.config.set({} if address else NO_HTTP):  # the nannies pass this configuration to their workers
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               protocol="tls://", security=local_security, dashboard_address=address,
                               scheduler_kwargs={} if address else {"dashboard_address": "127.0.0.1:0"})
    with cluster, Client(cluster, security=local_security) as local_client:
        yield local_client
