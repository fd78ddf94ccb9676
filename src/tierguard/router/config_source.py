"""Where the router's configuration comes from, and how it learns of changes.

* :class:`FileSource`: a YAML/JSON file, polled (stat every ``interval``, re-read when
  size, mtime or inode change, compared by content). Polling rather than inotify because a
  Kubernetes-mounted ConfigMap changes by an atomic symlink swap that inotify watches on
  the file miss, and because it works the same everywhere.
* :class:`ConfigMapSource`: the router's ConfigMap watched through the Kubernetes API
  (the key :data:`tierguard.api.constants.ROUTER_CONFIG_KEY`), so a new weight, above all
  a rollback to 0, reaches every replica within a second or two instead of the kubelet's
  minute-long volume sync. Credentials: the in-cluster service account, or a kubeconfig
  (``--kubeconfig``). The watch is plain HTTP (list, then watch from its
  resourceVersion; relist on 410 Gone or any error, with backoff), done with aiohttp so it
  shares the router's event loop.

A source only delivers text. Parsing and validation are :func:`parse_config` (pure);
applying it is the app's job, which refuses an invalid config, counts and logs it, and
keeps the old one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
import yaml
from pydantic import ValidationError

from tierguard.api.constants import ROUTER_CONFIG_KEY
from tierguard.api.routerconfig import RouterConfig

log = logging.getLogger(__name__)

OnConfig = Callable[[str], Awaitable[None]]


class ConfigError(ValueError):
    """The configuration text is not a valid RouterConfig; the message says where."""


class ConfigSourceError(RuntimeError):
    """The configuration cannot be fetched (missing file, API server refuses)."""


def parse_config(text: str) -> RouterConfig:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"router config is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("router config must be a mapping at the top level")
    try:
        return RouterConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid router config: {problems}") from None


class ConfigSource(Protocol):
    def describe(self) -> str: ...

    async def load(self) -> str:
        """The current text (raises :class:`ConfigSourceError`)."""
        ...

    async def watch(self, on_config: OnConfig) -> None:
        """Call ``on_config`` with each new text; runs until cancelled."""
        ...


class FileSource:
    def __init__(self, path: str | os.PathLike[str], interval_s: float = 1.0) -> None:
        self.path = Path(path)
        self.interval_s = interval_s
        self._last_stat: tuple[int, int, int] | None = None
        self._last_text: str | None = None

    def describe(self) -> str:
        return f"file {self.path}"

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()  # follows symlinks: a ConfigMap's ..data swap changes it
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    async def load(self) -> str:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigSourceError(f"cannot read config file {self.path}: {exc}") from None
        self._last_stat = self._stat()
        self._last_text = text
        return text

    async def watch(self, on_config: OnConfig) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            st = self._stat()
            if st is None or st == self._last_stat:
                continue
            self._last_stat = st
            try:
                text = self.path.read_text(encoding="utf-8")
            except OSError as exc:
                log.warning("config file %s unreadable: %s", self.path, exc)
                continue
            if text != self._last_text:
                self._last_text = text
                await on_config(text)


# --------------------------------------------------------------------------- Kubernetes


class KubeAccess:
    """API server URL, TLS context and a way to get the bearer token."""

    def __init__(
        self, host: str, ssl_context: ssl.SSLContext | bool, token: Callable[[], str | None]
    ) -> None:
        self.host = host.rstrip("/")
        self.ssl_context = ssl_context
        self.token = token

    @classmethod
    def from_environment(cls, kubeconfig: str | None) -> KubeAccess:
        """In-cluster service account unless a kubeconfig is given. Uses the official
        client's loaders (they know every kubeconfig auth flavour), not its HTTP stack."""
        from kubernetes import client, config  # local: only needed in ConfigMap mode

        cfg = client.Configuration()
        try:
            if kubeconfig:
                config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=kubeconfig, client_configuration=cfg
                )
            else:
                config.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=cfg
                )
        except (config.ConfigException, OSError) as exc:
            where = kubeconfig or "the in-cluster service account"
            raise ConfigSourceError(
                f"cannot load Kubernetes credentials from {where}: {exc}"
            ) from None
        if cfg.verify_ssl:
            ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
            if cfg.cert_file and cfg.key_file:
                ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
            ssl_arg: ssl.SSLContext | bool = ctx
        else:
            ssl_arg = False

        def token() -> str | None:
            # the loaders store "Bearer <token>" under BearerToken (older releases:
            # authorization); the refresh hook re-reads rotated service-account tokens
            value: str | None = cfg.get_api_key_with_prefix("BearerToken", alias="authorization")
            return value

        return cls(cfg.host, ssl_arg, token)

    def headers(self) -> dict[str, str]:
        tok = self.token()
        return {"Authorization": tok} if tok else {}


class ConfigMapSource:
    def __init__(
        self, access: KubeAccess, namespace: str, name: str, key: str = ROUTER_CONFIG_KEY
    ) -> None:
        self.access = access
        self.namespace = namespace
        self.name = name
        self.key = key
        self._last_text: str | None = None
        self._resource_version: str | None = None

    def describe(self) -> str:
        return f"ConfigMap {self.namespace}/{self.name} key {self.key}"

    def _text_of(self, obj: dict[str, Any]) -> str:
        data = obj.get("data") or {}
        if self.key not in data:
            raise ConfigSourceError(f"{self.describe()}: the key is missing")
        return str(data[self.key])

    def _path(self) -> str:
        return f"/api/v1/namespaces/{quote(self.namespace)}/configmaps"

    async def load(self) -> str:
        url = f"{self.access.host}{self._path()}/{quote(self.name)}"
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                url,
                headers=self.access.headers(),
                ssl=self.access.ssl_context,
                timeout=aiohttp.ClientTimeout(total=15),
            ) as resp,
        ):
            if resp.status != 200:
                raise ConfigSourceError(
                    f"{self.describe()}: API server answered {resp.status}: "
                    f"{(await resp.text())[:300]}"
                )
            obj = await resp.json()
        self._resource_version = obj["metadata"].get("resourceVersion")
        text = self._text_of(obj)
        self._last_text = text
        return text

    async def watch(self, on_config: OnConfig) -> None:
        backoff = 0.5
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    await self._watch_once(session, on_config)
                    backoff = 0.5
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the watch must outlive API server hiccups
                    log.warning(
                        "%s: watch failed (%s); retrying in %.1fs", self.describe(), exc, backoff
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
                    self._resource_version = None

    async def _deliver(self, obj: dict[str, Any], on_config: OnConfig) -> None:
        self._resource_version = obj["metadata"].get("resourceVersion")
        try:
            text = self._text_of(obj)
        except ConfigSourceError as exc:
            log.error("%s", exc)
            return
        if text != self._last_text:
            self._last_text = text
            await on_config(text)

    async def _watch_once(self, session: aiohttp.ClientSession, on_config: OnConfig) -> None:
        base = f"{self.access.host}{self._path()}"
        selector = quote(f"metadata.name={self.name}")
        if self._resource_version is None:  # (re)list: catch anything missed meanwhile
            async with session.get(
                f"{base}?fieldSelector={selector}",
                headers=self.access.headers(),
                ssl=self.access.ssl_context,
                timeout=aiohttp.ClientTimeout(total=15),
            ) as resp:
                if resp.status != 200:
                    raise ConfigSourceError(f"list answered {resp.status}")
                listing = await resp.json()
            for item in listing.get("items", []):
                await self._deliver(item, on_config)
            self._resource_version = listing["metadata"].get("resourceVersion")
        url = (
            f"{base}?fieldSelector={selector}&watch=1&allowWatchBookmarks=true"
            f"&timeoutSeconds=300&resourceVersion={self._resource_version}"
        )
        async with session.get(
            url,
            headers=self.access.headers(),
            ssl=self.access.ssl_context,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=330),
        ) as resp:
            if resp.status != 200:
                raise ConfigSourceError(f"watch answered {resp.status}")
            async for raw in resp.content:
                if not raw.strip():
                    continue
                event = json.loads(raw)
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind in ("ADDED", "MODIFIED"):
                    await self._deliver(obj, on_config)
                elif kind == "BOOKMARK":
                    self._resource_version = obj["metadata"].get("resourceVersion")
                elif kind == "ERROR":  # 410 Gone: our resourceVersion is too old
                    self._resource_version = None
                    return
                elif kind == "DELETED":
                    log.error("%s was deleted; keeping the active config", self.describe())
