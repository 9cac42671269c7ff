//! `POST /images/create` (`docker pull`, and `docker import` with `fromSrc=-`) and
//! `POST /images/{name}/push` (`docker push`), streamed as docker's JSON messages.
//!
//! Pull and push take the request's `X-Registry-Auth` for the registry they talk to, and
//! only that: the service's own credential files are never read for a client (as dockerd
//! reads none), so what a client may pull or push is what its own credentials allow.

use hyper::Method;
use kiln_engine::images::RootfsSource;
use kiln_engine::pull::join_reference;
use kiln_engine::{PullOptions, PushOptions};

use crate::auth::registry_auth;
use crate::body::BodyReader;
use crate::error::ApiError;
use crate::router::{Call, HandlerResult, Router};
use crate::stream::JsonMessage;
use crate::transfer::stream_transfer;

/// Adds this module's routes.
pub fn routes(router: &mut Router) {
    router
        .route(Method::POST, "/images/create", |c| Box::pin(create(c)))
        .route(Method::POST, "/images/{name*}/push", |c| Box::pin(push(c)));
}

/// `POST /images/create`: `fromImage` (+ `tag`, `platform`) pulls; `fromSrc=-` imports the
/// body as a root file system (`repo`, `tag`, `message`, `changes`).
pub async fn create(call: Call) -> HandlerResult {
    if let Some(source) = call.query.get("fromSrc").filter(|s| !s.is_empty()) {
        if source != "-" {
            return Err(ApiError::bad_request(format!(
                "fromSrc={source}: only `-` (the request body) is supported, not a URL"
            )));
        }
        return import(call).await;
    }
    let Some(image) = call.query.get("fromImage").filter(|s| !s.is_empty()) else {
        return Err(ApiError::bad_request(
            "fromImage or fromSrc is required to create an image",
        ));
    };
    let reference = join_reference(image, call.query.get("tag").unwrap_or(""))?;
    let platform = match call.query.get("platform").map(str::trim) {
        None | Some("") => kiln_engine::pull::Platform::host(),
        Some(p) => kiln_engine::pull::parse_platform(p)?,
    };
    let opts = PullOptions {
        reference,
        platform,
        tls_verify: true,
        credentials: Some(registry_auth(&call)?),
    };
    let engine = call.engine.clone();
    stream_transfer(move |progress| engine.pull(&opts, progress), |_| Vec::new()).await
}

/// `docker import -`: the body is a tar of the root file system; the answer is the image ID
/// as the stream's status, which the CLI prints.
async fn import(call: Call) -> HandlerResult {
    let checked = import_request(&call);
    let (name, message, changes) = match checked {
        Ok(parts) => parts,
        Err(e) => {
            // Read the upload before refusing it: an answer sent while the client is still
            // writing its body reaches it as a broken pipe, not as the message.
            drain(call.body).await;
            return Err(e);
        }
    };
    let engine = call.engine.clone();
    let reader = BodyReader::from_incoming(call.body);
    stream_transfer(
        move |_progress| {
            let source = RootfsSource::Stream {
                reader: Box::new(reader),
                name: "-".into(),
            };
            engine.import_rootfs_with_changes(source, &name, message, &changes)
        },
        |id| vec![JsonMessage::status(id.to_string(), None)],
    )
    .await
}

/// An import's name, message and changes (`repo`, `tag`, `message`, `changes`), checked.
fn import_request(call: &Call) -> Result<(String, Option<String>, Vec<String>), ApiError> {
    // Dockerfile instructions, one a value (`docker import -c`).
    let changes: Vec<String> = call
        .query
        .all("changes")
        .into_iter()
        .map(str::to_string)
        .collect();
    kiln_engine::import_changes::check_changes(&changes)?;
    let repo = call.query.get("repo").unwrap_or("");
    if repo.is_empty() {
        return Err(ApiError::bad_request(
            "import needs a repository name (docker import - NAME[:TAG]): kiln keeps no unnamed imports",
        ));
    }
    let name = join_reference(repo, call.query.get("tag").unwrap_or(""))?;
    let message = call
        .query
        .get("message")
        .filter(|m| !m.is_empty())
        .map(str::to_string);
    Ok((name, message, changes))
}

/// The most of a refused upload read and dropped before answering; past it the client may
/// see the connection close instead of the answer.
const DRAIN_LIMIT: u64 = 1 << 30;

/// Reads and drops a request body (at most [`DRAIN_LIMIT`] bytes).
async fn drain(mut body: hyper::body::Incoming) {
    use http_body_util::BodyExt;
    let mut read = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            read += data.len() as u64;
            if read > DRAIN_LIMIT {
                return;
            }
        }
    }
}

/// `POST /images/{name}/push`: the tag `tag` of the repository `name`, or with no `tag`
/// every tag the store has of it (`docker push --all-tags`).
pub async fn push(call: Call) -> HandlerResult {
    let name = call.param("name");
    let reference = join_reference(name, call.query.get("tag").unwrap_or(""))?;
    let opts = PushOptions {
        reference,
        tls_verify: true,
        credentials: Some(registry_auth(&call)?),
    };
    let engine = call.engine.clone();
    // Each tag's aux message follows its digest line (see `transfer`).
    stream_transfer(
        move |progress| engine.push_all_tags(&opts, progress),
        |_| Vec::new(),
    )
    .await
}
