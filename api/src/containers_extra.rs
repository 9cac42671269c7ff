//! `docker cp` (`/containers/{id}/archive`: GET, HEAD and PUT), `docker top` and `docker
//! stats`, each over the engine operation `kiln cp`, `kiln top` and `kiln stats` use.

use std::io::Write;

use base64::Engine as _;
use bytes::Bytes;
use hyper::{header, Method, Response, StatusCode};
use kiln_engine::containers::{ArchiveOptions, PathStat};

use crate::body::BodyReader;
use crate::containers::blocking;
use crate::router::{Call, HandlerResult, Router};
use crate::stream::{body_pipe, ChannelBody};
use crate::{empty, json_response, ApiError};

/// The header that carries a path's stat, as dockerd names it.
const PATH_STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

/// Registers the routes.
pub fn routes(router: &mut Router) {
    router
        .route(Method::GET, "/containers/{id}/archive", |c| {
            Box::pin(archive_get(c))
        })
        .route(Method::HEAD, "/containers/{id}/archive", |c| {
            Box::pin(archive_head(c))
        })
        .route(Method::PUT, "/containers/{id}/archive", |c| {
            Box::pin(archive_put(c))
        })
        .route(Method::GET, "/containers/{id}/top", |c| Box::pin(top(c)))
        .route(Method::GET, "/containers/{id}/stats", |c| {
            Box::pin(stats(c))
        });
}

/// The stat header's value: base64 of the stat as JSON.
fn stat_header(stat: &PathStat) -> String {
    let json = serde_json::to_vec(stat).unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(json)
}

fn path_query(call: &Call) -> String {
    call.query.get("path").unwrap_or("").to_string()
}

/// `HEAD /containers/{id}/archive?path=`: the stat header alone (404 for a missing path).
async fn archive_head(call: Call) -> HandlerResult {
    let (engine, id, path) = (
        call.engine.clone(),
        call.param("id").to_string(),
        path_query(&call),
    );
    let stat = blocking(move || Ok(engine.container_path_stat(&id, &path)?)).await?;
    Response::builder()
        .status(StatusCode::OK)
        .header(PATH_STAT_HEADER, stat_header(&stat))
        .header(header::CONTENT_TYPE, "application/x-tar")
        .body(empty())
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// `GET /containers/{id}/archive?path=`: a tar of the path, streamed, with its stat header.
async fn archive_get(call: Call) -> HandlerResult {
    let (engine, id, path) = (
        call.engine.clone(),
        call.param("id").to_string(),
        path_query(&call),
    );
    let (stat_tx, stat_rx) = tokio::sync::oneshot::channel::<PathStat>();
    let (writer, failure, body) = body_pipe();
    let task = tokio::task::spawn_blocking(move || {
        let written = engine
            .container_archive(&id, &path, &ArchiveOptions::default(), move |stat| {
                let _ = stat_tx.send(stat.clone());
                Ok(writer)
            })
            .and_then(|mut w| Ok(w.flush()?));
        if let Err(e) = &written {
            failure.fail(std::io::Error::other(e.display_chain()));
        }
        written
    });
    let Ok(stat) = stat_rx.await else {
        // The path was not found (or the container): nothing was sent yet.
        task.await
            .map_err(|e| ApiError::internal(format!("the copy's thread failed: {e}")))??;
        return Err(ApiError::internal("the copy ended before it began"));
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(PATH_STAT_HEADER, stat_header(&stat))
        .header(header::CONTENT_TYPE, "application/x-tar")
        .body(body.boxed())
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// `PUT /containers/{id}/archive?path=DIR&noOverwriteDirNonDir=`: the body, a tar, is
/// extracted into DIR as it arrives.
async fn archive_put(call: Call) -> HandlerResult {
    let (engine, id, path) = (
        call.engine.clone(),
        call.param("id").to_string(),
        path_query(&call),
    );
    let no_overwrite = call.query.bool("noOverwriteDirNonDir");
    let reader = BodyReader::from_incoming(call.body);
    blocking(move || Ok(engine.extract_to_container(&id, &path, reader, no_overwrite)?)).await?;
    Response::builder()
        .status(StatusCode::OK)
        .body(empty())
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// `GET /containers/{id}/top?ps_args=`.
async fn top(call: Call) -> HandlerResult {
    let (engine, id) = (call.engine.clone(), call.param("id").to_string());
    let args = call.query.get("ps_args").unwrap_or("").to_string();
    let top = blocking(move || Ok(engine.container_top(&id, &args)?)).await?;
    Ok(json_response(StatusCode::OK, &top))
}

/// `GET /containers/{id}/stats?stream=&one-shot=`: one report, or one a second (JSON lines)
/// until the client leaves or the container stops.
async fn stats(call: Call) -> HandlerResult {
    let (engine, id) = (call.engine.clone(), call.param("id").to_string());
    let one_shot = call.query.bool("one-shot");
    if !call.query.bool_or("stream", true) {
        let report = blocking(move || Ok(engine.container_stats_once(&id, one_shot)?)).await?;
        return Ok(json_response(StatusCode::OK, &report));
    }
    let mut reports = blocking(move || Ok(engine.container_stats(&id)?)).await?;
    let (tx, body) = ChannelBody::channel(4);
    tokio::task::spawn_blocking(move || {
        while let Ok(Some(report)) = reports.next_report() {
            let mut line = serde_json::to_vec(&report).unwrap_or_default();
            line.push(b'\n');
            // The client left: stop sampling.
            if tx.blocking_send(Bytes::from(line)).is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.boxed())
        .map_err(|e| ApiError::internal(e.to_string()))
}
