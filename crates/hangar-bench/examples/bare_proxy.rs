//! The floor under the gateway: a reverse proxy on the gateway's own stack (tokio's runtime
//! chosen as the gateway does, hyper-util's HTTP/1+2 server, the gateway's own connections to
//! model servers, mimalloc) that does nothing else. It reads each request's body, sends it to the model server and passes the
//! whole answer back. What it costs per request, the gateway cannot go below without leaving
//! that stack.
//!
//! `cargo run --release -p hangar-bench --example bare_proxy -- LISTEN UPSTREAM`
//! (e.g. `127.0.0.1:18505 http://127.0.0.1:18501`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use hangar_gateway::upstream::Upstreams;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:18505".into());
    let upstream: http::Uri = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:18501".into())
        .parse()
        .context("the upstream is not a URL")?;
    // As the gateway chooses (`crates/hangar/src/gateway.rs`): one thread on one core, a
    // worker per core otherwise.
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let runtime = hangar_bench::runtime(cores)?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen).await?;
        eprintln!("bare_proxy: listening on {listen}");
        let client = Arc::new(
            Upstreams::new(Duration::from_secs(5), 4096, None).map_err(|e| anyhow::anyhow!(e))?,
        );
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let client = Arc::clone(&client);
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let client = Arc::clone(&client);
                    let upstream = upstream.clone();
                    async move { Ok::<_, Infallible>(forward(&client, &upstream, request).await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

async fn forward(
    client: &Upstreams,
    upstream: &http::Uri,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return status(StatusCode::BAD_REQUEST);
    };
    let mut uri = parts.uri.into_parts();
    uri.scheme = upstream.scheme().cloned();
    uri.authority = upstream.authority().cloned();
    let Ok(uri) = http::Uri::from_parts(uri) else {
        return status(StatusCode::BAD_REQUEST);
    };
    let mut outgoing = Request::new(Full::new(body));
    *outgoing.method_mut() = parts.method;
    *outgoing.uri_mut() = uri;
    if let Some(kind) = parts.headers.get(http::header::CONTENT_TYPE) {
        outgoing
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, kind.clone());
    }
    let Ok(answer) = client.send(outgoing).await else {
        return status(StatusCode::BAD_GATEWAY);
    };
    let (parts, body) = answer.into_parts();
    match body.collect().await {
        Ok(body) => Response::from_parts(parts, Full::new(body.to_bytes())),
        Err(_) => status(StatusCode::BAD_GATEWAY),
    }
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    response
}
