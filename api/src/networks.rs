//! Networks (`/networks...`) and the `NetworkingConfig` of a container create.

use std::collections::BTreeMap;

use hyper::{Method, StatusCode};
use kiln_engine::networks::{ConnectOptions, NetworkCreateOptions, NetworkFilter};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::images::{blocking, status_only};
use crate::json_response;
use crate::router::{Call, HandlerResult, Router};

/// Adds this module's routes.
pub fn routes(router: &mut Router) {
    router
        .route(Method::GET, "/networks", |c| Box::pin(list(c)))
        .route(Method::POST, "/networks/create", |c| Box::pin(create(c)))
        .route(Method::POST, "/networks/prune", |c| Box::pin(prune(c)))
        .route(Method::GET, "/networks/{id}", |c| Box::pin(inspect(c)))
        .route(Method::DELETE, "/networks/{id}", |c| Box::pin(remove(c)))
        .route(Method::POST, "/networks/{id}/connect", |c| {
            Box::pin(connect(c))
        })
        .route(Method::POST, "/networks/{id}/disconnect", |c| {
            Box::pin(disconnect(c))
        });
}

fn network_filter(call: &Call) -> Result<NetworkFilter, ApiError> {
    let filters = call.query.filters()?;
    Ok(NetworkFilter::from_pairs(filters.pairs())?)
}

/// `GET /networks?filters=`.
async fn list(call: Call) -> HandlerResult {
    let filter = network_filter(&call)?;
    let engine = call.engine.clone();
    let list = blocking(move || Ok(engine.network_list(&filter)?)).await?;
    Ok(json_response(StatusCode::OK, &list))
}

/// `GET /networks/{id}`.
async fn inspect(call: Call) -> HandlerResult {
    let id = call.param("id").to_string();
    let engine = call.engine.clone();
    let n = blocking(move || Ok(engine.network_inspect(&id)?)).await?;
    Ok(json_response(StatusCode::OK, &n))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct IpamConfigBody {
    subnet: String,
    gateway: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct IpamBody {
    config: Option<Vec<IpamConfigBody>>,
}

/// docker's `NetworkCreateRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: String,
    driver: String,
    internal: bool,
    #[serde(rename = "IPAM")]
    ipam: Option<IpamBody>,
    labels: Option<BTreeMap<String, String>>,
}

/// `POST /networks/create`: 201 `{"Id","Warning"}`.
async fn create(call: Call) -> HandlerResult {
    let bytes = crate::body::collect(call.body, crate::body::JSON_LIMIT).await?;
    let body: CreateBody = crate::body::decode_json(&bytes)?;
    if body.name.is_empty() {
        return Err(ApiError::bad_request("network name is required"));
    }
    let ipam = body
        .ipam
        .and_then(|i| i.config)
        .unwrap_or_default()
        .into_iter()
        .next()
        .unwrap_or_default();
    let options = NetworkCreateOptions {
        name: body.name,
        driver: Some(body.driver).filter(|d| !d.is_empty()),
        subnet: Some(ipam.subnet).filter(|s| !s.is_empty()),
        gateway: Some(ipam.gateway).filter(|s| !s.is_empty()),
        internal: body.internal,
        labels: body.labels.unwrap_or_default(),
    };
    let engine = call.engine.clone();
    let created = blocking(move || Ok(engine.network_create(&options)?)).await?;
    Ok(json_response(StatusCode::CREATED, &created))
}

/// `DELETE /networks/{id}`: 204.
async fn remove(call: Call) -> HandlerResult {
    let id = call.param("id").to_string();
    let engine = call.engine.clone();
    blocking(move || Ok(engine.network_remove(&id)?)).await?;
    status_only(StatusCode::NO_CONTENT)
}

/// `POST /networks/prune`: `{"NetworksDeleted":[...]}`.
async fn prune(call: Call) -> HandlerResult {
    let filter = network_filter(&call)?;
    let engine = call.engine.clone();
    let removed = blocking(move || Ok(engine.network_prune(&filter)?)).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "NetworksDeleted": removed }),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct EndpointIpamBody {
    #[serde(rename = "IPv4Address")]
    ipv4_address: String,
}

/// docker's `EndpointSettings` (the parts kiln uses).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointBody {
    aliases: Option<Vec<String>>,
    #[serde(rename = "IPAMConfig")]
    ipam_config: Option<EndpointIpamBody>,
}

impl EndpointBody {
    fn into_options(self) -> ConnectOptions {
        ConnectOptions {
            aliases: self.aliases.unwrap_or_default(),
            ipv4: self
                .ipam_config
                .map(|i| i.ipv4_address)
                .filter(|s| !s.is_empty()),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectBody {
    container: String,
    endpoint_config: Option<EndpointBody>,
}

/// `POST /networks/{id}/connect`: 200.
async fn connect(call: Call) -> HandlerResult {
    let id = call.param("id").to_string();
    let bytes = crate::body::collect(call.body, crate::body::JSON_LIMIT).await?;
    let body: ConnectBody = crate::body::decode_json(&bytes)?;
    let options = body.endpoint_config.unwrap_or_default().into_options();
    let engine = call.engine.clone();
    blocking(move || Ok(engine.network_connect(&id, &body.container, &options)?)).await?;
    status_only(StatusCode::OK)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DisconnectBody {
    container: String,
    force: bool,
}

/// `POST /networks/{id}/disconnect`: 200.
async fn disconnect(call: Call) -> HandlerResult {
    let id = call.param("id").to_string();
    let bytes = crate::body::collect(call.body, crate::body::JSON_LIMIT).await?;
    let body: DisconnectBody = crate::body::decode_json(&bytes)?;
    let engine = call.engine.clone();
    blocking(move || Ok(engine.network_disconnect(&id, &body.container, body.force)?)).await?;
    status_only(StatusCode::OK)
}

/// `NetworkingConfig` of `POST /containers/create`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkingConfigBody {
    endpoints_config: Option<BTreeMap<String, Option<EndpointBody>>>,
}

/// The networks a create names, as the engine's options take them.
#[derive(Debug, Default)]
pub struct CreateEndpoints {
    /// The primary network (`HostConfig.NetworkMode`, else the only endpoint's).
    pub network: String,
    /// Its aliases.
    pub aliases: Vec<String>,
    /// Its address.
    pub ip: Option<String>,
    /// The other endpoints.
    pub extra: Vec<(String, ConnectOptions)>,
}

impl NetworkingConfigBody {
    /// Splits the endpoints into the primary network's options and the rest.
    pub fn into_endpoints(self, network_mode: &str) -> CreateEndpoints {
        let mut endpoints = self.endpoints_config.unwrap_or_default();
        let network = if network_mode.is_empty() || network_mode == "default" {
            if endpoints.len() == 1 {
                endpoints.keys().next().cloned().unwrap_or_default()
            } else {
                "default".to_string()
            }
        } else {
            network_mode.to_string()
        };
        let primary = endpoints
            .remove(&network)
            .flatten()
            .unwrap_or_default()
            .into_options();
        let user = kiln_engine::networks::attach::is_user_network(&network);
        CreateEndpoints {
            network,
            aliases: if user { primary.aliases } else { Vec::new() },
            ip: primary.ipv4,
            extra: endpoints
                .into_iter()
                .filter(|(n, _)| kiln_engine::networks::attach::is_user_network(n))
                .map(|(n, e)| (n, e.unwrap_or_default().into_options()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_config_names_the_network_and_its_aliases() {
        let body: NetworkingConfigBody = serde_json::from_str(
            r#"{"EndpointsConfig":{"app_default":{"Aliases":["web","w1"],"IPAMConfig":{"IPv4Address":"172.18.0.9"}},"other":null}}"#,
        )
        .unwrap();
        let e = body.into_endpoints("app_default");
        assert_eq!(e.network, "app_default");
        assert_eq!(e.aliases, vec!["web", "w1"]);
        assert_eq!(e.ip.as_deref(), Some("172.18.0.9"));
        assert_eq!(e.extra.len(), 1);
        assert_eq!(e.extra[0].0, "other");
        let none = NetworkingConfigBody::default().into_endpoints("");
        assert_eq!(none.network, "default");
    }
}
