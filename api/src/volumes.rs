//! Volumes (`/volumes...`) and disk usage (`GET /system/df`).

use std::collections::BTreeMap;

use hyper::{Method, StatusCode};
use kiln_engine::images::ImageFilter;
use kiln_engine::volumes::{VolumeCreate, VolumeFilter, VolumeInfo};
use kiln_engine::Progress;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::images::{blocking, status_only};
use crate::json_response;
use crate::router::{Call, HandlerResult, Router};

/// Adds this module's routes.
pub fn routes(router: &mut Router) {
    router
        .route(Method::GET, "/volumes", |c| Box::pin(list(c)))
        .route(Method::POST, "/volumes/create", |c| Box::pin(create(c)))
        .route(Method::POST, "/volumes/prune", |c| Box::pin(prune(c)))
        .route(Method::GET, "/volumes/{name}", |c| Box::pin(inspect(c)))
        .route(Method::DELETE, "/volumes/{name}", |c| Box::pin(remove(c)))
        .route(Method::GET, "/system/df", |c| Box::pin(disk_usage(c)));
}

fn volume_filter(call: &Call) -> Result<VolumeFilter, ApiError> {
    let filters = call.query.filters()?;
    Ok(VolumeFilter::parse(filters.pairs())?)
}

/// A volume's engine error: a missing one is docker's `get NAME: no such volume`.
fn volume_error(name: &str, err: kiln_engine::Error) -> ApiError {
    if err.is_not_found() {
        ApiError::not_found(format!("get {name}: no such volume"))
    } else {
        ApiError::from(err)
    }
}

/// `GET /volumes?filters=`: `{"Volumes":[...],"Warnings":null}`.
async fn list(call: Call) -> HandlerResult {
    let filter = volume_filter(&call)?;
    let engine = call.engine.clone();
    let volumes = blocking(move || Ok(engine.list_volumes_filtered(&filter)?)).await?;
    let volumes: Vec<VolumeInfo> = volumes.iter().map(VolumeInfo::of).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "Volumes": volumes, "Warnings": Value::Null }),
    ))
}

/// docker's `VolumeCreateBody` (20.10 sends every field, 28 only `Driver` and `Name`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    driver: Option<String>,
    #[serde(default)]
    driver_opts: Option<BTreeMap<String, String>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// `POST /volumes/create`: 201 and the volume.
async fn create(call: Call) -> HandlerResult {
    let bytes = crate::body::collect(call.body, crate::body::JSON_LIMIT).await?;
    let body: CreateBody = crate::body::decode_json_or_default(&bytes)?;
    let spec = VolumeCreate {
        name: body.name,
        driver: body.driver,
        driver_opts: body.driver_opts.unwrap_or_default(),
        labels: body.labels.unwrap_or_default(),
    };
    let engine = call.engine.clone();
    let volume = blocking(move || Ok(engine.create_volume_with(&spec)?)).await?;
    Ok(json_response(StatusCode::CREATED, &VolumeInfo::of(&volume)))
}

/// `GET /volumes/{name}`.
async fn inspect(call: Call) -> HandlerResult {
    let name = call.param("name").to_string();
    let engine = call.engine.clone();
    let volume = blocking(move || {
        engine
            .inspect_volume(&name)
            .map_err(|e| volume_error(&name, e))
    })
    .await?;
    Ok(json_response(StatusCode::OK, &VolumeInfo::of(&volume)))
}

/// `DELETE /volumes/{name}?force=`: 204; 409 while a container mounts it.
async fn remove(call: Call) -> HandlerResult {
    let name = call.param("name").to_string();
    let force = call.query.bool("force");
    let engine = call.engine.clone();
    blocking(move || {
        engine
            .remove_volume_checked(&name, force)
            .map_err(|e| volume_error(&name, e))
    })
    .await?;
    status_only(StatusCode::NO_CONTENT)
}

/// `POST /volumes/prune?filters=`: the volumes no container mounts.
async fn prune(call: Call) -> HandlerResult {
    let filter = volume_filter(&call)?;
    let engine = call.engine.clone();
    let report = blocking(move || Ok(engine.prune_volumes(&filter)?)).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "VolumesDeleted": report.deleted,
            "SpaceReclaimed": report.space_reclaimed,
        }),
    ))
}

/// `GET /system/df`: the images (as `GET /images/json` lists them), the volumes with their
/// sizes, and the store's layer bytes. Containers are the containers module's to list; the
/// build cache is one total, which docker's per-record list cannot show, so it is empty.
async fn disk_usage(call: Call) -> HandlerResult {
    let engine = call.engine.clone();
    let body = blocking(move || {
        let usage = engine.disk_usage()?;
        let images = engine.list_image_entries(&ImageFilter::default(), &Progress::none())?;
        let mounted = engine.mounted_volumes()?;
        let volumes: Vec<Value> = engine
            .list_volumes()?
            .iter()
            .map(|v| {
                let mut info = serde_json::to_value(VolumeInfo::of(v)).unwrap_or(Value::Null);
                info["UsageData"] = json!({
                    "Size": kiln_engine::volumes::volume_size(v),
                    "RefCount": i64::from(mounted.contains(&v.name)),
                });
                info
            })
            .collect();
        Ok(json!({
            "LayersSize": usage.images_size,
            "Images": images,
            "Containers": [],
            "Volumes": volumes,
            "BuildCache": [],
        }))
    })
    .await?;
    Ok(json_response(StatusCode::OK, &body))
}
