//! Routes, the bearer-token check and the JSON error convention of the control server.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::sessions::{KillRequest, SessionList};
use super::{ActionError, Control, MAX_BODY_BYTES, MAX_WEIGHT, ServerAction, dashboard, metrics};

/// What the handlers share. Not derived: `derive(Clone)` would demand `C: Clone`.
struct AppState<C> {
    control: Arc<C>,
}

impl<C> Clone for AppState<C> {
    fn clone(&self) -> Self {
        Self {
            control: Arc::clone(&self.control),
        }
    }
}

/// All routes. Reads need no token; `/api/v1` needs it when one is configured.
pub fn router<C: Control>(token: Option<String>, control: Arc<C>) -> Router {
    let token: Option<Arc<[u8]>> = token.map(|token| Arc::from(token.into_bytes()));
    let actions = Router::new()
        .route("/api/v1/servers/{backend}/{server}/drain", post(drain::<C>))
        .route(
            "/api/v1/servers/{backend}/{server}/enable",
            post(enable::<C>),
        )
        .route(
            "/api/v1/servers/{backend}/{server}/disable",
            post(disable::<C>),
        )
        .route(
            "/api/v1/servers/{backend}/{server}/weight",
            post(set_weight::<C>)
                .put(set_weight::<C>)
                .delete(reset_weight::<C>),
        )
        .route(
            "/api/v1/instances/{name}/maintenance",
            post(maintenance::<C>),
        )
        // An announce group held withdrawn; names are unique across instances and groups.
        .route(
            "/api/v1/announce/{name}/maintenance",
            post(maintenance::<C>),
        )
        .route(
            "/api/v1/backends/{backend}/sessions",
            get(backend_sessions::<C>),
        )
        .route(
            "/api/v1/servers/{backend}/{server}/sessions",
            get(server_sessions::<C>),
        )
        .route(
            "/api/v1/servers/{backend}/{server}/sessions/kill",
            post(kill_sessions::<C>),
        )
        .route_layer(middleware::from_fn_with_state(token, authorize));
    Router::new()
        .route("/", get(dashboard_page))
        .route("/status", get(status::<C>))
        .route("/metrics", get(metrics_text::<C>))
        .merge(actions)
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(AppState { control })
}

/// A refusal: the status code and a JSON body `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<ActionError> for ApiError {
    fn from(error: ActionError) -> Self {
        let status = match error {
            ActionError::UnknownBackend { .. }
            | ActionError::UnknownServer { .. }
            | ActionError::UnknownInstance { .. } => StatusCode::NOT_FOUND,
            ActionError::Invalid(_) => StatusCode::BAD_REQUEST,
            ActionError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        Self::new(status, error.to_string())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::new(rejection.status(), rejection.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::new(
                status,
                format!("request body larger than {MAX_BODY_BYTES} bytes"),
            );
        }
        Self::new(status, rejection.body_text())
    }
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such path")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this path",
    )
}

/// Guards `/api/v1`: refuses requests a browser sent on behalf of another site (the admin API
/// has no CORS, but a cross-site form POST needs no preflight), then checks the bearer token.
async fn authorize(
    State(token): State<Option<Arc<[u8]>>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if is_cross_site(request.headers()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross-site requests to the admin API are refused",
        ));
    }
    if let Some(expected) = token {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| bearer_token(value.as_bytes()));
        if !presented.is_some_and(|presented| constant_time_eq(presented, &expected)) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token",
            ));
        }
    }
    Ok(next.run(request).await)
}

/// The credentials of `Bearer <token>`; the scheme is case-insensitive (RFC 9110 section 11.1).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
}

/// Compares without an early exit, so the time taken does not reveal how much of a guess matched.
/// The length is not secret (it differs per deployment, not per guess).
fn constant_time_eq(presented: &[u8], expected: &[u8]) -> bool {
    if presented.len() != expected.len() {
        return false;
    }
    presented
        .iter()
        .zip(expected)
        .fold(0_u8, |difference, (a, b)| difference | (a ^ b))
        == 0
}

/// A browser request from another origin: `Sec-Fetch-Site` says so, or `Origin` names a host other
/// than the one addressed. curl and scripts send neither header.
fn is_cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let host = headers.get(header::HOST).map(HeaderValue::as_bytes);
    let origin_host = origin
        .as_bytes()
        .strip_prefix(b"http://")
        .or_else(|| origin.as_bytes().strip_prefix(b"https://"));
    origin_host.is_none() || origin_host != host
}

async fn dashboard_page() -> Html<&'static str> {
    Html(dashboard::PAGE)
}

async fn status<C: Control>(State(state): State<AppState<C>>) -> Response {
    Json(state.control.status()).into_response()
}

async fn metrics_text<C: Control>(State(state): State<AppState<C>>) -> Response {
    let text = metrics::render(state.control.status());
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
}

type ServerPath = Result<Path<(String, String)>, PathRejection>;

async fn drain<C: Control>(
    state: State<AppState<C>>,
    path: ServerPath,
) -> Result<Response, ApiError> {
    server_action(state, path, ServerAction::Drain).await
}

async fn enable<C: Control>(
    state: State<AppState<C>>,
    path: ServerPath,
) -> Result<Response, ApiError> {
    server_action(state, path, ServerAction::Enable).await
}

async fn disable<C: Control>(
    state: State<AppState<C>>,
    path: ServerPath,
) -> Result<Response, ApiError> {
    server_action(state, path, ServerAction::Disable).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WeightRequest {
    weight: u32,
}

async fn set_weight<C: Control>(
    state: State<AppState<C>>,
    path: ServerPath,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: WeightRequest = parse_json(&body?)?;
    if request.weight > MAX_WEIGHT {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "weight {} is above the maximum {MAX_WEIGHT}",
                request.weight
            ),
        ));
    }
    server_action(state, path, ServerAction::SetWeight(request.weight)).await
}

async fn reset_weight<C: Control>(
    state: State<AppState<C>>,
    path: ServerPath,
) -> Result<Response, ApiError> {
    server_action(state, path, ServerAction::ResetWeight).await
}

async fn server_action<C: Control>(
    State(state): State<AppState<C>>,
    path: ServerPath,
    action: ServerAction,
) -> Result<Response, ApiError> {
    let Path((backend, server)) = path?;
    state
        .control
        .server_action(&backend, &server, action)
        .await?;
    let (name, weight) = match action {
        ServerAction::Drain => ("drain", None),
        ServerAction::Enable => ("enable", None),
        ServerAction::Disable => ("disable", None),
        ServerAction::SetWeight(weight) => ("weight", Some(weight)),
        ServerAction::ResetWeight => ("reset_weight", None),
    };
    tracing::info!(backend, server, action = name, weight, "admin action");
    let mut body = serde_json::json!({ "backend": backend, "server": server, "action": name });
    if let Some(weight) = weight {
        body["weight"] = weight.into();
    }
    Ok(Json(body).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaintenanceRequest {
    enabled: bool,
}

async fn maintenance<C: Control>(
    State(state): State<AppState<C>>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Path(instance) = path?;
    let request: MaintenanceRequest = parse_json(&body?)?;
    state
        .control
        .maintenance(&instance, request.enabled)
        .await?;
    tracing::info!(
        instance,
        enabled = request.enabled,
        "admin action: maintenance"
    );
    Ok(
        Json(serde_json::json!({ "instance": instance, "maintenance": request.enabled }))
            .into_response(),
    )
}

async fn backend_sessions<C: Control>(
    State(state): State<AppState<C>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(backend) = path?;
    let sessions = state.control.sessions(&backend, None)?;
    Ok(Json(SessionList { sessions }).into_response())
}

async fn server_sessions<C: Control>(
    State(state): State<AppState<C>>,
    path: ServerPath,
) -> Result<Response, ApiError> {
    let Path((backend, server)) = path?;
    let sessions = state.control.sessions(&backend, Some(&server))?;
    Ok(Json(SessionList { sessions }).into_response())
}

async fn kill_sessions<C: Control>(
    State(state): State<AppState<C>>,
    path: ServerPath,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Path((backend, server)) = path?;
    let request: KillRequest = parse_json(&body?)?;
    let filter = request
        .filter()
        .map_err(|message| ApiError::new(StatusCode::BAD_REQUEST, message))?;
    let killed = state.control.kill_sessions(&backend, &server, filter)?;
    tracing::info!(
        backend,
        server,
        ?filter,
        killed,
        "admin action: sessions killed"
    );
    Ok(
        Json(serde_json::json!({ "backend": backend, "server": server, "killed": killed }))
            .into_response(),
    )
}

/// Parses a JSON body whatever its content type (so `curl -d` works); serde's message says
/// which field is wrong and where.
fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid JSON body: {error}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_needs_credentials() {
        assert_eq!(bearer_token(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"bearer abc "), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"Basic abcdef"), None);
        assert_eq!(bearer_token(b"Bear"), None);
        assert_eq!(bearer_token(b"Bearer "), Some(&b""[..]));
    }

    #[test]
    fn constant_time_eq_compares_whole_tokens() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret1", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
    }

    #[test]
    fn cross_site_detection() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        assert!(!is_cross_site(&headers(&[("host", "127.0.0.1:9650")])));
        assert!(!is_cross_site(&headers(&[
            ("host", "127.0.0.1:9650"),
            ("origin", "http://127.0.0.1:9650")
        ])));
        assert!(is_cross_site(&headers(&[
            ("host", "127.0.0.1:9650"),
            ("origin", "http://evil.example")
        ])));
        assert!(is_cross_site(&headers(&[
            ("host", "127.0.0.1:9650"),
            ("origin", "null")
        ])));
        assert!(is_cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!is_cross_site(&headers(&[(
            "sec-fetch-site",
            "same-origin"
        )])));
    }
}
