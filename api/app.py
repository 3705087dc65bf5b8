"""The Litestar application: routes, dependencies, problem details, OpenAPI, metrics."""

from __future__ import annotations

from litestar import Litestar, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, OpenAPI, SecurityScheme

from api import fastpath
from api.deps import Services, provide_access, provide_principal, provide_services
from api.errors import HANDLERS, document_problems
from api.observability import MetricsController, access_log, http_metrics
from api.routes.audit import AuditRoutes, TransferProofRoutes
from api.routes.auth import login, logout, me
from api.routes.certificates import CertificateRoutes, PublicCertificateRoutes
from api.routes.corrections import CorrectionRoutes, RecordCorrectionRoutes
from api.routes.households import HouseholdRoutes
from api.routes.ledger import AccountRoutes, CommunityRoutes, TransferRoutes
from api.routes.people import PersonRoutes
from api.routes.record_import import RecordImportRoutes
from api.routes.service_records import ActivityRoutes, ServiceRecordRoutes
from api.routes.service_stars import ServiceStarRoutes
from api.routes.settings import SettingsRoutes
from api.routes.shop import ShopCatalogRoutes, ShopOrderRoutes, ShopReportRoutes
from api.routes.timebank import ExchangeRoutes
from api.routes.timebank_people import RegionTimeBankRoutes, TimeBankPeopleRoutes
from api.routes.users import UserRoutes

API_VERSION = "1.0.0"


@get("/health", sync_to_thread=False, include_in_schema=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/ready", sync_to_thread=True, include_in_schema=False)
def ready(services: NamedDependency[Services]) -> dict[str, str]:
    services.ledger.ping()
    return {"status": "ready"}


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="vledger 志愿服务积分与时间银行账本",
        version=API_VERSION,
        description="志愿服务记录、积分、时间币与户积分的可验证账本。所有写操作接受 Idempotency-Key 请求头。",
        path="/docs",
        render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        components=Components(
            security_schemes={
                "BearerToken": SecurityScheme(type="http", scheme="bearer", description="登录或 API 令牌")
            }
        ),
        security=[{"BearerToken": []}],
    )


async def close_async_reads(app: Litestar) -> None:
    """Shutdown hook: close the asyncio pool the balance reads opened on this event loop."""
    services: Services | None = app.state.services
    if services is not None:
        await services.account_reads.close()


def create_app(services: Services, *, access_logging: bool = True, fast_paths: bool = True) -> Litestar:
    app = Litestar(
        route_handlers=[
            health,
            ready,
            login,
            logout,
            me,
            CommunityRoutes,
            AccountRoutes,
            TransferRoutes,
            PersonRoutes,
            HouseholdRoutes,
            SettingsRoutes,
            UserRoutes,
            ActivityRoutes,
            ServiceRecordRoutes,
            ServiceStarRoutes,
            RecordImportRoutes,
            RecordCorrectionRoutes,
            CorrectionRoutes,
            CertificateRoutes,
            PublicCertificateRoutes,
            ExchangeRoutes,
            TimeBankPeopleRoutes,
            RegionTimeBankRoutes,
            AuditRoutes,
            TransferProofRoutes,
            ShopCatalogRoutes,
            ShopOrderRoutes,
            ShopReportRoutes,
            MetricsController,
        ],
        dependencies={
            "services": Provide(provide_services, sync_to_thread=False),
            "principal": Provide(provide_principal),
            "access": Provide(provide_access, sync_to_thread=False),
        },
        state=State({"services": services}),
        exception_handlers=HANDLERS,  # type: ignore[arg-type]
        openapi_config=openapi_config(),
        middleware=[
            http_metrics,
            *([access_log] if access_logging else []),
            *([fastpath.fast_paths] if fast_paths else []),  # innermost: after routing, inside metrics
        ],
        logging_config=None,  # the process configures logging (JSON lines, vledger.service)
        on_shutdown=[close_async_reads],
    )
    # The document is built once, here, with every route registered; the error responses are added
    # to it in one place rather than on each handler.
    document_problems(app.openapi_schema)
    document_security(app.openapi_schema)
    return app


# The certificate verification paths are public too: the QR code on a printed certificate leads there.
PUBLIC_PATHS = ("/api/v1/auth/login", "/audit/v1/logs", "/audit/v1/keys", "/api/v1/public/certificates/")


def document_security(schema: OpenAPI) -> None:
    """Per operation: public ones need no token (login, the audit paths an auditor uses with only
    the public keys); every other one needs the bearer token. Layered security lists in Litestar
    would merge into "token optional", so the document states each operation's requirement."""
    for path, item in (schema.paths or {}).items():
        public = path.startswith(PUBLIC_PATHS) and not path.endswith("/entries")
        for method in ("get", "post", "put", "patch", "delete"):
            operation = getattr(item, method, None)
            if operation is not None:
                operation.security = [] if public else [{"BearerToken": []}]
