//! `GET /events`: docker's system events (what happened to containers), as JSON lines,
//! read back from the engine's event log and followed until `until` or the client leaves.

use bytes::Bytes;
use hyper::{Method, Response, StatusCode};
use kiln_engine::activity::{is_probe, EventFilter};

use crate::containers::log_time;
use crate::empty;
use crate::router::{Call, HandlerResult, Router};
use crate::stream::ChannelBody;

/// Registers `/events`.
pub fn routes(router: &mut Router) {
    router.route(Method::GET, "/events", |c| Box::pin(events(c)));
}

/// `GET /events?since=&until=&filters=`.
async fn events(call: Call) -> HandlerResult {
    let filters = call.query.filters()?;
    filters.validate(&["type", "event", "container", "label"])?;
    let owned =
        |key: &str| -> Vec<String> { filters.get(key).into_iter().map(String::from).collect() };
    let filter = EventFilter {
        since: log_time(call.query.get("since"))?,
        until: log_time(call.query.get("until"))?,
        kinds: owned("type"),
        actions: owned("event"),
        containers: owned("container"),
        labels: owned("label"),
    };
    let engine = call.engine.clone();
    let (tx, body) = ChannelBody::channel(64);
    tokio::task::spawn_blocking(move || {
        let _ = engine.events(&filter, &mut |event| {
            let gone = || std::io::Error::other("the client went away");
            if is_probe(event) {
                return if tx.is_closed() { Err(gone()) } else { Ok(()) };
            }
            let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
            line.push(b'\n');
            tx.blocking_send(Bytes::from(line)).map_err(|_| gone())
        });
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(body.boxed())
        .unwrap_or_else(|_| Response::new(empty())))
}
