"""Voilà extension points of the public dashboard, named in ``voila.json``.

* :class:`CappedKernelManager` (``VoilaConfiguration.multi_kernel_manager_class``): a cap
  on concurrent kernels with a "busy, try again" page above it.
* :class:`DashboardIdentityProvider` (``Voila.identity_provider_class``): Voilà's
  identity provider that also gives the dashboard page its XSRF cookie, so that the
  page's own POST (the kernel shutdown when the tab closes) passes the XSRF check that
  protects every other state-changing request.

The kernel cap
--------------
Voilà starts one kernel per page view. :class:`CappedKernelManager` is the base class
Voilà's pool of preheated kernels is built on (Voilà wraps it in its own
``VoilaKernelManager``). It refuses to start a kernel when :attr:`~CappedKernelManager.
max_kernels` kernels are already running or starting, with :class:`KernelLimitReached`:
an HTTP 503 error that Voilà's page handler renders with the template's ``503.html`` (a
short "busy, try again" page, no traceback).

Every kernel counts, the standby kernels of the pool included: the cap bounds the
server's kernel processes (and so its memory), ``max_kernels`` × the memory of one
kernel. With a pool of one and a cap of N, N visitors are served (the N-th one takes
the last standby kernel) and the (N+1)-th gets the busy page:

* a visitor who takes the standby kernel triggers a refill; at the cap the refill fails
  with :class:`KernelLimitReached` and the failed refill stays in the pool, so the next
  visitor who draws it gets the busy page (Voilà then starts cold kernels, below the cap,
  until the pool is refilled);
* when a kernel shuts down (the tab was closed, or the idle culler ended it) failed
  refills are dropped and the pool is filled again, so preheating comes back as soon as
  there is room.

XSRF
----
jupyter_server checks an XSRF token on every POST, PUT, PATCH and DELETE unless
``disable_check_xsrf`` is set (this project's configuration once set it for the whole
server). The token is the ``_xsrf`` cookie, echoed in the request (``X-XSRFToken`` or an
``_xsrf`` form field). Voilà's page sends ``_xsrf`` with its shutdown beacon
(``/voila/api/shutdown/<kernel>``), read from ``document.cookie``, but Voilà's page
handler never issues the cookie: with the check on, the beacon was refused (403) and
the kernel lived on until culled. :class:`DashboardIdentityProvider` issues it; nothing
is exempt from the check. The cookie is ``SameSite=Strict`` (``voila.json``'s
``xsrf_cookie_kwargs``).

Examples
--------
``voila.json``::

    {"Voila": {"identity_provider_class": "abstractor_widgets.voila.server.DashboardIdentityProvider"},
     "VoilaConfiguration": {"multi_kernel_manager_class":
        "abstractor_widgets.voila.server.CappedKernelManager"},
     "CappedKernelManager": {"max_kernels": 20}}

or the environment: ``ABSTRACTOR_MAX_KERNELS=20``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from typing import Any

from jupyter_server.auth.identity import PasswordIdentityProvider, User
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado.web import HTTPError, RequestHandler
from traitlets import Integer, default, validate

__all__ = [
    "MAX_KERNELS_ENV_VAR", "DEFAULT_MAX_KERNELS", "KernelLimitReached", "CappedKernelManager",
    "DashboardIdentityProvider",
]  # fmt: skip

#: Environment variable: the default of :attr:`CappedKernelManager.max_kernels`.
MAX_KERNELS_ENV_VAR = "ABSTRACTOR_MAX_KERNELS"
#: Kernels at most when neither the configuration nor the environment says otherwise
#: (about 3.5 GB of private memory with the 60,000-abstract model: ~176 MB a kernel).
DEFAULT_MAX_KERNELS = 20


class KernelLimitReached(HTTPError):
    """No kernel for this visitor: the server runs its maximum number of kernels (HTTP 503)."""

    def __init__(self, limit: int) -> None:
        super().__init__(503, "kernel limit reached (%d kernels running)", limit, reason="Busy")
        self.limit = limit


def max_kernels_from_env(environ: dict[str, str] | None = None) -> int:
    """``$ABSTRACTOR_MAX_KERNELS`` as a positive integer, else :data:`DEFAULT_MAX_KERNELS`.

    Raises
    ------
    ValueError
        If the variable is set to something other than a positive integer.
    """
    value = (os.environ if environ is None else environ).get(MAX_KERNELS_ENV_VAR, "").strip()
    if not value:
        return DEFAULT_MAX_KERNELS
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{MAX_KERNELS_ENV_VAR} must be a positive integer, not {value!r}") from None
    if number < 1:
        raise ValueError(f"{MAX_KERNELS_ENV_VAR} must be a positive integer, not {value!r}")
    return number


class CappedKernelManager(AsyncMappingKernelManager):
    """``AsyncMappingKernelManager`` with a cap on the kernels running or starting."""

    max_kernels = Integer(
        help=(
            "Kernels that may run at once, the preheated pool's standby kernels included; above it a "
            f"visitor gets a 'busy, try again' page (HTTP 503). Default: ${MAX_KERNELS_ENV_VAR} or "
            f"{DEFAULT_MAX_KERNELS}."
        ),
    ).tag(config=True)

    @default("max_kernels")
    def _default_max_kernels(self) -> int:
        return max_kernels_from_env()

    @validate("max_kernels")
    def _check_max_kernels(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if value < 1:
            raise ValueError(f"max_kernels must be at least 1, not {value}")
        return value

    def __init__(self, **kwargs: Any) -> None:
        self._starting = 0  # kernels between the cap check and their registration
        self._closing = False
        super().__init__(**kwargs)

    @property
    def kernels_in_use(self) -> int:
        """Kernels running or starting (the number compared with :attr:`max_kernels`)."""
        return len(self._kernels) + self._starting

    async def start_kernel(self, *args: Any, **kwargs: Any) -> str:
        """Start a kernel unless :attr:`max_kernels` are running or starting.

        Raises
        ------
        KernelLimitReached
            At the cap (Voilà renders it as the template's 503 page).
        """
        if self.kernels_in_use >= self.max_kernels:
            if _is_preheat(kwargs):
                self.log.info("Kernel limit reached (%d kernels): the preheated pool is refilled when a "
                              "kernel shuts down", self.max_kernels)  # fmt: skip
            else:
                self.log.warning("Kernel limit reached (%d kernels): a visitor gets the busy page", self.max_kernels)
            # a refill refused here fails its pool task: take it out of the pool as soon as it
            # is done (Voilà's shutdown_kernel calls result() on every finished pool task)
            asyncio.get_running_loop().call_soon(self._drop_failed_refills)
            raise KernelLimitReached(self.max_kernels)
        self._starting += 1  # no await between the check and this: one event loop
        try:
            return await super().start_kernel(*args, **kwargs)
        finally:
            self._starting -= 1

    async def shutdown_kernel(self, kernel_id: str, *args: Any, **kwargs: Any) -> None:
        """Shut a kernel down, then refill Voilà's pool of preheated kernels if it has room."""
        result = await super().shutdown_kernel(kernel_id, *args, **kwargs)
        if not self._closing:
            self._refill_pools()
        return result

    async def shutdown_all(self, *args: Any, **kwargs: Any) -> None:
        """Shut every kernel down (server exit): no refill from here on."""
        self._closing = True
        return await super().shutdown_all(*args, **kwargs)

    def _drop_failed_refills(self) -> None:
        """Take the pool tasks that failed (a refill refused at the cap) out of Voilà's pools."""
        pools = getattr(self, "_pools", None)
        if not isinstance(pools, dict):
            return  # no preheating: Voilà's plain kernel manager
        for pool in pools.values():
            pool[:] = [task for task in pool if not _failed(task)]

    def _refill_pools(self) -> None:
        """Drop refills that failed at the cap and top the pools up (a Voilà pool, if any)."""
        pools = getattr(self, "_pools", None)
        fill = getattr(self, "fill_if_needed", None)
        if not isinstance(pools, dict) or fill is None:
            return  # no preheating: Voilà's plain kernel manager
        self._drop_failed_refills()
        for name in list(pools):
            try:
                fill(delay=None, notebook_name=name)
            except Exception:  # a refill must never break a shutdown
                self.log.exception("Could not refill the kernel pool of %s", name)


def _failed(task: Any) -> bool:
    """Whether a pool task is finished without a kernel (its exception is marked retrieved)."""
    if not isinstance(task, asyncio.Future) or not task.done():
        return False
    if task.cancelled():
        return True
    return task.exception() is not None


def _is_preheat(kwargs: dict[str, Any]) -> bool:
    """Whether Voilà starts this kernel for its preheated pool (it marks their environment)."""
    env = kwargs.get("env") or {}
    return str(env.get("VOILA_PREHEAT", "")).lower() == "true"


class DashboardIdentityProvider(PasswordIdentityProvider):
    """Voilà's default identity provider, plus the XSRF cookie on the dashboard page.

    Identity providers already set cookies (Voilà's anonymous user); this one also makes
    the page's ``GET`` issue the ``_xsrf`` cookie (tornado's ``xsrf_token``) that Voilà's
    front end echoes in its shutdown beacon. Authentication is unchanged.
    """

    def get_user(self, handler: RequestHandler) -> User | None | Awaitable[User | None]:
        user = super().get_user(handler)
        if handler.request.method != "GET" or not _is_page(handler):
            return user
        return self._with_xsrf_cookie(handler, user)

    @staticmethod
    async def _with_xsrf_cookie(handler: RequestHandler, user: User | None | Awaitable[User | None]) -> User | None:
        if isinstance(user, Awaitable):
            user = await user
        handler.current_user = user  # tornado's xsrf_token consults it; prepare() sets it too
        handler.xsrf_token  # noqa: B018 - the property sets the cookie when it is absent
        return user


def _is_page(handler: RequestHandler) -> bool:
    try:
        from voila.handler import VoilaHandler
    except ImportError:  # pragma: no cover - used only inside Voilà
        return False
    return isinstance(handler, VoilaHandler)
