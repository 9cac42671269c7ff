//! Images: list, inspect, history, tag, remove, save, load and prune
//! (`/images/json`, `/images/{name}/...`, `/images/get`, `/images/load`, `/images/prune`).

use std::io::Write;

use hyper::{header, Method, Response, StatusCode};
use kiln_engine::images::{ArchiveFormat, ArchiveSource, ImageFilter, ImagePruneOptions};
use kiln_engine::{Engine, Progress};
use serde_json::{json, Value};

use crate::body::BodyReader;
use crate::error::ApiError;
use crate::router::{Call, HandlerResult, Router};
use crate::stream::{body_pipe, JsonMessage};
use crate::{empty, json_response};

/// Adds this module's routes (the literal paths before the `{name*}` patterns).
pub fn routes(router: &mut Router) {
    router
        .route(Method::GET, "/images/json", |c| Box::pin(list(c)))
        .route(Method::GET, "/images/get", |c| Box::pin(save_many(c)))
        .route(Method::POST, "/images/load", |c| Box::pin(load(c)))
        .route(Method::POST, "/images/prune", |c| Box::pin(prune(c)))
        .route(Method::GET, "/images/{name*}/json", |c| {
            Box::pin(inspect(c))
        })
        .route(Method::GET, "/images/{name*}/history", |c| {
            Box::pin(history(c))
        })
        .route(Method::GET, "/images/{name*}/get", |c| {
            Box::pin(save_one(c))
        })
        .route(Method::POST, "/images/{name*}/tag", |c| Box::pin(tag(c)))
        .route(Method::DELETE, "/images/{name*}", |c| Box::pin(remove(c)));
}

/// Runs blocking engine work off the runtime.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("the operation's thread failed: {e}")))?
}

/// An engine error about the image `name`: a missing one is docker's 404
/// `No such image: NAME` (what the clients test for), anything else as its kind says.
pub fn image_error(name: &str, err: kiln_engine::Error) -> ApiError {
    if err.is_not_found() {
        ApiError::not_found(format!("No such image: {name}"))
    } else {
        ApiError::from(err)
    }
}

/// `GET /images/json?all=&filters=`: one entry per image ID (`all` changes nothing: kiln
/// keeps no intermediate images).
async fn list(call: Call) -> HandlerResult {
    let filters = call.query.filters()?;
    let mut pairs: Vec<(String, String)> = filters
        .pairs()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // API < 1.25 clients send `filter=REPO`.
    if let Some(legacy) = call.query.get("filter").filter(|f| !f.is_empty()) {
        pairs.push(("reference".into(), legacy.to_string()));
    }
    let engine = call.engine.clone();
    let entries = blocking(move || {
        let filter = ImageFilter::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        let missing = filter.before.clone().or(filter.since.clone());
        engine
            .list_image_entries(&filter, &Progress::none())
            .map_err(|e| match missing {
                Some(name) if e.is_not_found() => image_error(&name, e),
                _ => e.into(),
            })
    })
    .await?;
    Ok(json_response(StatusCode::OK, &entries))
}

/// `GET /images/{name}/json`: docker's inspect object.
async fn inspect(call: Call) -> HandlerResult {
    let name = call.param("name").to_string();
    let engine = call.engine.clone();
    let inspect = blocking(move || {
        engine
            .inspect_image(&name)
            .map_err(|e| image_error(&name, e))
    })
    .await?;
    Ok(json_response(StatusCode::OK, &inspect))
}

/// `GET /images/{name}/history`: newest first, `<missing>` for the steps kiln keeps no image of.
async fn history(call: Call) -> HandlerResult {
    let name = call.param("name").to_string();
    let engine = call.engine.clone();
    let body = blocking(move || {
        let entries = engine
            .image_history(&name)
            .map_err(|e| image_error(&name, e))?;
        let tags = engine
            .image(&name)
            .map(|i| i.names)
            .map_err(|e| image_error(&name, e))?;
        Ok(entries
            .iter()
            .map(|h| {
                json!({
                    "Id": h.id.as_ref().map_or("<missing>".to_string(), |d| d.to_string()),
                    "Created": h.created.unwrap_or(0),
                    "CreatedBy": h.created_by,
                    "Tags": if h.id.is_some() { json!(tags) } else { Value::Null },
                    "Size": h.size,
                    "Comment": h.comment,
                })
            })
            .collect::<Vec<Value>>())
    })
    .await?;
    Ok(json_response(StatusCode::OK, &body))
}

/// `POST /images/{name}/tag?repo=R&tag=T`: 201, empty.
async fn tag(call: Call) -> HandlerResult {
    let source = call.param("name").to_string();
    let repo = call.query.get("repo").unwrap_or("").to_string();
    if repo.is_empty() {
        return Err(ApiError::bad_request(
            "repository name must have at least one component",
        ));
    }
    let target = match call.query.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo,
    };
    let engine = call.engine.clone();
    blocking(move || {
        engine
            .tag_image(&source, &target)
            .map_err(|e| image_error(&source, e))
    })
    .await?;
    status_only(StatusCode::CREATED)
}

/// `DELETE /images/{name}?force=&noprune=`: `[{"Untagged":..},{"Deleted":..}]`.
async fn remove(call: Call) -> HandlerResult {
    let name = call.param("name").to_string();
    let force = call.query.bool("force");
    let prune = !call.query.bool("noprune");
    let engine = call.engine.clone();
    let removed = blocking(move || {
        engine
            .remove_image(&name, force, prune)
            .map_err(|e| image_error(&name, e))
    })
    .await?;
    let mut body: Vec<Value> = removed
        .untagged
        .iter()
        .map(|n| json!({ "Untagged": n }))
        .collect();
    if let Some(id) = removed.deleted {
        body.push(json!({ "Deleted": id.to_string() }));
    }
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /images/get?names=A&names=B`.
async fn save_many(call: Call) -> HandlerResult {
    let names: Vec<String> = call
        .query
        .all("names")
        .into_iter()
        .map(String::from)
        .collect();
    if names.is_empty() {
        return Err(ApiError::bad_request("no image names given (names=)"));
    }
    save(call.engine.clone(), names).await
}

/// `GET /images/{name}/get`.
async fn save_one(call: Call) -> HandlerResult {
    save(call.engine.clone(), vec![call.param("name").to_string()]).await
}

/// Streams the docker-archive of `names` as the engine writes it, through a pipe of a few
/// chunks: memory stays flat whatever the images' size. A failure before the first byte is
/// an error status; after it, the transfer is broken off.
async fn save(engine: std::sync::Arc<Engine>, names: Vec<String>) -> HandlerResult {
    let (writer, failure, mut body) = body_pipe();
    let task = tokio::task::spawn_blocking(move || {
        let written = engine
            .save_images(&names, ArchiveFormat::Docker, writer)
            .and_then(|mut w| Ok(w.flush()?));
        if let Err(e) = &written {
            failure.fail(std::io::Error::other(e.display_chain()));
        }
        written.map_err(|e| {
            let name = names.first().cloned().unwrap_or_default();
            image_error(&name, e)
        })
    });
    match body.first_chunk().await {
        Ok(Some(())) => {}
        // Nothing written: the save failed (or wrote an empty archive).
        Ok(None) | Err(_) => {
            task.await
                .map_err(|e| ApiError::internal(format!("the save's thread failed: {e}")))??;
        }
    }
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-tar")
        .body(body.boxed())
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// `POST /images/load?quiet=`: the archive is the (chunked) body, read as it arrives. The
/// answer is dockerd's JSON lines, `Loaded image: NAME` (or `Loaded image ID: ID` for an
/// image the archive names not), whatever `quiet` says (it only silences progress).
async fn load(call: Call) -> HandlerResult {
    let reader = BodyReader::from_incoming(call.body);
    let engine = call.engine.clone();
    let loaded =
        blocking(move || Ok(engine.load_images(ArchiveSource::Stream(Box::new(reader)))?)).await?;
    let mut lines = Vec::new();
    for image in loaded {
        let text = match image.name {
            Some(n) => format!("Loaded image: {n}\n"),
            None => format!("Loaded image ID: {}\n", image.id),
        };
        lines.extend_from_slice(&JsonMessage::stream(text).to_line());
    }
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(crate::full(lines))
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// `POST /images/prune?filters=`: `dangling=false` (docker's `-a`) removes every image no
/// container uses; `label` narrows that.
async fn prune(call: Call) -> HandlerResult {
    let filters = call.query.filters()?;
    filters.validate(&["dangling", "label"])?;
    let mut opts = ImagePruneOptions::default();
    for (key, value) in filters.pairs() {
        match key {
            "dangling" => {
                opts.all = matches!(value.to_ascii_lowercase().as_str(), "false" | "0");
            }
            _ => opts.labels.push(value.to_string()),
        }
    }
    let engine = call.engine.clone();
    let report = blocking(move || Ok(engine.prune_images(&opts)?)).await?;
    let mut deleted: Vec<Value> = Vec::new();
    for removed in &report.deleted {
        deleted.extend(removed.untagged.iter().map(|n| json!({ "Untagged": n })));
        if let Some(id) = &removed.deleted {
            deleted.push(json!({ "Deleted": id.to_string() }));
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "ImagesDeleted": if deleted.is_empty() { Value::Null } else { Value::from(deleted) },
            "SpaceReclaimed": report.space_reclaimed,
        }),
    ))
}

/// A response with `status` and no body.
pub(crate) fn status_only(status: StatusCode) -> HandlerResult {
    Response::builder()
        .status(status)
        .body(empty())
        .map_err(|e| ApiError::internal(e.to_string()))
}
