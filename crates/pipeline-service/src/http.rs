//! The HTTP API, on its own thread with a single-threaded tokio runtime.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use polling_engine::TriggerError;
use prometheus_client::registry::Registry;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::ingest::parse_ingest_in;
use crate::state::{IngestRefusal, ServiceState};

/// Largest ingest body: 16 MiB.
pub const MAX_INGEST_BYTES: usize = 16 * 1024 * 1024;

#[derive(Clone)]
struct Api {
    state: Arc<ServiceState>,
    registry: Arc<Registry>,
}

/// The running server; [`HttpServer::stop`] ends it.
pub struct HttpServer {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// The routes, for the server and for tests.
fn router(state: Arc<ServiceState>) -> Router {
    let registry = Arc::new(crate::prometheus::registry(Arc::clone(&state)));
    Router::new()
        .route("/api/buffer/metrics", get(buffer_metrics))
        .route("/api/buffer/writer/metrics", get(writer_metrics))
        .route("/api/buffer/health", get(health))
        .route("/api/buffer/ingest", post(ingest))
        .route("/api/polling/status", get(polling_status))
        .route("/api/polling/groups/{name}/trigger", post(trigger))
        .route("/metrics", get(metrics))
        .route("/", get(root))
        .route("/monitoring/buffer", get(dashboard))
        .route("/monitoring/assets/{file}", get(asset))
        .layer(DefaultBodyLimit::max(MAX_INGEST_BYTES))
        .with_state(Api { state, registry })
}

impl HttpServer {
    /// Binds `address` (so a taken port fails start-up at once) and serves on a new thread.
    pub fn start(address: SocketAddr, state: Arc<ServiceState>) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(state);
        let thread = std::thread::Builder::new()
            .name("http-api".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(error) => {
                            log::error!("HTTP API: {error}");
                            return;
                        }
                    };
                    let shutdown = async {
                        let _ = stopped.await;
                    };
                    if let Err(error) = axum::serve(listener, app)
                        .with_graceful_shutdown(shutdown)
                        .await
                    {
                        log::error!("HTTP API stopped: {error}");
                    }
                });
            })?;
        Ok(HttpServer {
            address,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address served (with the real port when 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting requests and waits for the server thread.
    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn buffer_metrics(State(api): State<Api>) -> Response {
    json_response(StatusCode::OK, &api.state.buffer_metrics())
}

async fn writer_metrics(State(api): State<Api>) -> Response {
    json_response(StatusCode::OK, &api.state.writer_metrics())
}

async fn health(State(api): State<Api>) -> Response {
    let (healthy, body) = api.state.health();
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, &body)
}

async fn polling_status(State(api): State<Api>) -> Response {
    json_response(StatusCode::OK, &api.state.polling_status())
}

async fn metrics(State(api): State<Api>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::prometheus::render(&api.registry),
    )
        .into_response()
}

/// The dashboard: one page, its CSS and JavaScript inline, charts by the vendored uPlot.
const DASHBOARD_HTML: &str = include_str!("../assets/dashboard.html");
const UPLOT_JS: &str = include_str!("../assets/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../assets/uPlot.min.css");
const UPLOT_LICENSE: &str = include_str!("../assets/uPlot.LICENSE");

async fn root() -> Response {
    (
        StatusCode::FOUND,
        [(header::LOCATION, "/monitoring/buffer")],
        "",
    )
        .into_response()
}

async fn dashboard() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        DASHBOARD_HTML,
    )
        .into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "uPlot.iife.min.js" => (UPLOT_JS, "text/javascript; charset=utf-8"),
        "uPlot.min.css" => (UPLOT_CSS, "text/css; charset=utf-8"),
        "uPlot.LICENSE" => (UPLOT_LICENSE, "text/plain; charset=utf-8"),
        _ => return json_response(StatusCode::NOT_FOUND, &json!({"error": "no such asset"})),
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        body,
    )
        .into_response()
}

/// How long a client refused for lack of room should wait: the writer drains a batch at
/// least every BUFFER_WRITE_INTERVAL_SEC (0.5 s by default).
const RETRY_AFTER_SECS: &str = "1";

async fn ingest(State(api): State<Api>, body: Result<Bytes, BytesRejection>) -> Response {
    let state = &api.state;
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &json!({"error": format!(
                    "the body is larger than {} MiB: send the values in smaller requests",
                    MAX_INGEST_BYTES / (1024 * 1024)
                )}),
            )
        }
        Err(rejection) => {
            return json_response(rejection.status(), &json!({"error": rejection.body_text()}))
        }
    };
    if state.is_shutting_down() {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"error": "the service is shutting down and accepts no more values"}),
        );
    }
    let values = match parse_ingest_in(&body, state.timestamp_zone.now(), state.timestamp_zone) {
        Ok(values) => values,
        Err(error) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({"error": error.to_string(), "item": error.index, "field": error.field}),
            )
        }
    };
    match state.push_if_room(values) {
        Ok(pushed) => {
            if let Some(ticket) = pushed.ticket {
                // Disk mode: 200 only once the values are on disk (one group commit).
                if let Err(error) = state.synced(ticket).await {
                    return json_response(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &json!({"error": format!(
                            "{error}: the values are not acknowledged; send them again (a \
                            repeat is stored once)"
                        )}),
                    );
                }
            }
            json_response(
                StatusCode::OK,
                &json!({"accepted": pushed.pushed, "displaced": pushed.displaced}),
            )
        }
        Err(refusal) => {
            let body = json!({"error": refusal.to_string()});
            match refusal {
                IngestRefusal::LargerThanBuffer { .. } => {
                    json_response(StatusCode::PAYLOAD_TOO_LARGE, &body)
                }
                IngestRefusal::NoRoom { .. } => {
                    let mut response = json_response(StatusCode::SERVICE_UNAVAILABLE, &body);
                    response.headers_mut().insert(
                        header::RETRY_AFTER,
                        header::HeaderValue::from_static(RETRY_AFTER_SECS),
                    );
                    response
                }
                _ => json_response(StatusCode::SERVICE_UNAVAILABLE, &body),
            }
        }
    }
}

async fn trigger(State(api): State<Api>, Path(name): Path<String>) -> Response {
    let Some(engine) = api.state.engine.get() else {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "no polling engine runs in this service (start it with start_all)"}),
        );
    };
    match engine.trigger(&name) {
        Ok(()) => json_response(StatusCode::ACCEPTED, &json!({"triggered": name})),
        Err(error) => {
            let status = match error {
                TriggerError::UnknownGroup(_) => StatusCode::NOT_FOUND,
                TriggerError::NotHandshake(_) => StatusCode::CONFLICT,
                TriggerError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            };
            json_response(status, &json!({"error": error.to_string()}))
        }
    }
}
