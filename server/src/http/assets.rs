//! The browser client's files at `/assets/...`, read from `--web-dir`
//! (`server/web/dist` in a checkout, where `node server/web/build.mjs` puts them).
//!
//! Content types follow the file extension. Files keep fixed names (`room.js`),
//! so browsers may keep a copy but must revalidate it on every use
//! (`Cache-Control: no-cache`; an unchanged file costs a `304 Not Modified`):
//! after a deploy every visitor runs the new client at once. A `NAME.gz` next to a
//! file is sent instead to browsers that accept gzip.
//!
//! When the client was never built, every asset answers 404 with a body that says
//! how to build it, rather than a page that silently shows nothing.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, VARY, X_CONTENT_TYPE_OPTIONS};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::services::ServeDir;

use crate::{AppState, Config};

/// The bundle every room page needs: when it is missing, the client was not built.
pub const ROOM_BUNDLE: &str = "room.js";

pub fn router() -> Router<AppState> {
    Router::new().route("/assets/{*path}", get(asset))
}

async fn asset(State(config): State<Arc<Config>>, request: Request) -> Response {
    serve(&config.web_dir, request).await
}

/// Answers a request for `/assets/<path>` from `web_dir`.
pub async fn serve(web_dir: &Path, mut request: Request) -> Response {
    let Some(path) = request.uri().path().strip_prefix("/assets") else {
        return missing(web_dir, request.uri().path());
    };
    let requested = request.uri().path().to_string();
    // ServeDir resolves the whole URI path inside `web_dir`, rejecting `..`.
    match Uri::builder().path_and_query(path).build() {
        Ok(uri) => *request.uri_mut() = uri,
        Err(_) => return missing(web_dir, &requested),
    }
    let mut files = ServeDir::new(web_dir)
        .append_index_html_on_directories(false)
        .precompressed_gzip();
    let response = match files.try_call(request).await {
        Ok(response) => response.map(Body::new),
        Err(error) => {
            tracing::error!(path = %requested, dir = %web_dir.display(), "reading an asset failed: {error}");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(CACHE_CONTROL, HeaderValue::from_static("no-store"))],
                "The file could not be read on the server; try again, and tell the operator if it keeps happening.",
            )
                .into_response();
        }
    };
    if response.status() == StatusCode::NOT_FOUND {
        return missing(web_dir, &requested);
    }
    with_cache_headers(response)
}

fn with_cache_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // The same URL answers gzip or plain bytes depending on Accept-Encoding.
    headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// The 404 for an asset that is not there, saying how to build the client when
/// that is why.
fn missing(web_dir: &Path, requested: &str) -> Response {
    let built = web_dir.join(ROOM_BUNDLE).is_file();
    let message = if built {
        format!("There is no asset at {requested}.\n")
    } else {
        tracing::warn!(
            dir = %web_dir.display(),
            "{requested} was asked for but the browser client is not built there; run `node server/web/build.mjs` or set --web-dir"
        );
        format!(
            "{requested} is missing: this server's browser client is not built.\n\
             Build it with `node server/web/build.mjs` (or start the server with `cargo xtask run`, \
             which builds it), or point --web-dir (ROOMSCALE_WEB_DIR) at a built copy.\n"
        )
    };
    (
        StatusCode::NOT_FOUND,
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        message,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::http::HeaderMap;
    use axum::http::header::{ACCEPT_ENCODING, IF_MODIFIED_SINCE};

    struct Answer {
        status: StatusCode,
        headers: HeaderMap,
        body: Vec<u8>,
    }

    impl Answer {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).map(|v| v.to_str().unwrap())
        }

        fn text(&self) -> String {
            String::from_utf8(self.body.clone()).unwrap()
        }
    }

    async fn get(web_dir: &Path, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = Request::builder().uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = serve(web_dir, request.body(Body::empty()).unwrap()).await;
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    fn built_client() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let write =
            |name: &str, contents: &str| std::fs::write(dir.path().join(name), contents).unwrap();
        write("room.js", "console.log('room')");
        write("pages.js", "console.log('pages')");
        write("avatar.gltf", r#"{"asset":{"version":"2.0"}}"#);
        std::fs::create_dir(dir.path().join("nested")).unwrap();
        write("nested/index.html", "<p>hi</p>");
        dir
    }

    #[tokio::test]
    async fn files_have_their_content_type_and_must_be_revalidated() {
        let dir = built_client();
        for (path, content_type) in [
            ("/assets/room.js", "text/javascript"),
            ("/assets/pages.js", "text/javascript"),
            ("/assets/avatar.gltf", "model/gltf+json"),
        ] {
            let answer = get(dir.path(), path, &[]).await;
            assert_eq!(answer.status, StatusCode::OK, "{path}");
            assert_eq!(answer.header("content-type"), Some(content_type), "{path}");
            assert_eq!(answer.header("cache-control"), Some("no-cache"), "{path}");
            assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
            assert!(answer.header("last-modified").is_some(), "{path}");
        }
    }

    #[tokio::test]
    async fn an_unchanged_file_is_not_sent_again() {
        let dir = built_client();
        let first = get(dir.path(), "/assets/room.js", &[]).await;
        let stamp = first.header("last-modified").unwrap().to_string();
        let again = get(
            dir.path(),
            "/assets/room.js",
            &[(IF_MODIFIED_SINCE.as_str(), &stamp)],
        )
        .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED);
        assert!(again.body.is_empty());
    }

    #[tokio::test]
    async fn gzip_twins_go_to_browsers_that_accept_gzip() {
        let dir = built_client();
        std::fs::write(dir.path().join("room.js.gz"), b"pretend gzip").unwrap();
        let gzip = get(
            dir.path(),
            "/assets/room.js",
            &[(ACCEPT_ENCODING.as_str(), "gzip, br")],
        )
        .await;
        assert_eq!(gzip.status, StatusCode::OK);
        assert_eq!(gzip.header("content-encoding"), Some("gzip"));
        assert_eq!(gzip.header("content-type"), Some("text/javascript"));
        assert_eq!(gzip.header("vary"), Some("accept-encoding"));
        assert_eq!(gzip.body, b"pretend gzip");

        let plain = get(dir.path(), "/assets/room.js", &[]).await;
        assert_eq!(plain.header("content-encoding"), None);
        assert_eq!(plain.body, b"console.log('room')");
    }

    #[tokio::test]
    async fn missing_files_directories_and_escapes_are_404() {
        let dir = built_client();
        for path in [
            "/assets/nope.js",
            "/assets/nested/",
            "/assets/nested",
            "/assets/../Cargo.toml",
            "/assets/%2e%2e/Cargo.toml",
            "/assets/nested/%2e%2e/%2e%2e/secret",
        ] {
            let answer = get(dir.path(), path, &[]).await;
            assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
            assert!(
                answer.text().starts_with("There is no asset at"),
                "{path}: {}",
                answer.text()
            );
            assert_eq!(answer.header("cache-control"), Some("no-store"));
        }
    }

    #[tokio::test]
    async fn an_unbuilt_client_says_how_to_build_it() {
        let nowhere = tempfile::tempdir().unwrap();
        for dir in [nowhere.path().to_path_buf(), nowhere.path().join("dist")] {
            let answer = get(&dir, "/assets/room.js", &[]).await;
            assert_eq!(answer.status, StatusCode::NOT_FOUND);
            assert_eq!(
                answer.header("content-type"),
                Some("text/plain; charset=utf-8")
            );
            let body = answer.text();
            assert!(body.contains("/assets/room.js is missing"), "{body}");
            assert!(body.contains("node server/web/build.mjs"), "{body}");
            assert!(body.contains("cargo xtask run"), "{body}");
            assert!(
                !body.contains(&nowhere.path().display().to_string()),
                "server paths stay in the log: {body}"
            );
        }
    }
}
