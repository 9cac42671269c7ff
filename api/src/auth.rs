//! Registry credentials as clients send them, and `POST /auth` (`docker login`).
//!
//! `X-Registry-Auth` (pull, push) is base64url of docker's `AuthConfig` JSON for the one
//! registry the request talks to; `X-Registry-Config` (build) is base64url of a JSON map
//! registry -> `AuthConfig`. Both are secrets: they are decoded into memory, handed to the
//! engine for that request and dropped. No error message quotes them, and nothing is stored
//! (the CLI writes its own config file after a successful `/auth`).

use std::collections::BTreeMap;

use base64::Engine as _;
use hyper::{Method, StatusCode};
use kiln_engine::login::LoginCheck;
use kiln_engine::RegistryAuth;
use serde::de::DeserializeOwned;

use crate::error::{chain_message, ApiError};
use crate::router::{Call, HandlerResult, Router};

/// The header pull and push take their credentials from.
pub const REGISTRY_AUTH_HEADER: &str = "x-registry-auth";
/// The header build takes its credentials (by registry) from.
pub const REGISTRY_CONFIG_HEADER: &str = "x-registry-config";

/// Adds this module's routes.
pub fn routes(router: &mut Router) {
    router.route(Method::POST, "/auth", |c| Box::pin(login(c)));
}

/// The request's `X-Registry-Auth`: anonymous when absent, empty or `{}`/`null`; a value
/// that does not decode is docker's 400.
pub fn registry_auth(call: &Call) -> Result<RegistryAuth, ApiError> {
    let Some(value) = call.parts.headers.get(REGISTRY_AUTH_HEADER) else {
        return Ok(RegistryAuth::default());
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request("invalid X-Registry-Auth header: not ASCII"))?;
    decode_registry_auth(text)
}

/// The request's `X-Registry-Config`: no entries when absent, empty or `{}`/`null`.
pub fn registry_config(call: &Call) -> Result<BTreeMap<String, RegistryAuth>, ApiError> {
    let Some(value) = call.parts.headers.get(REGISTRY_CONFIG_HEADER) else {
        return Ok(BTreeMap::new());
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request("invalid X-Registry-Config header: not ASCII"))?;
    decode_registry_config(text)
}

/// Decodes an `X-Registry-Auth` value.
pub fn decode_registry_auth(value: &str) -> Result<RegistryAuth, ApiError> {
    Ok(decode_header::<Option<RegistryAuth>>("X-Registry-Auth", value)?.unwrap_or_default())
}

/// Decodes an `X-Registry-Config` value.
pub fn decode_registry_config(value: &str) -> Result<BTreeMap<String, RegistryAuth>, ApiError> {
    Ok(
        decode_header::<Option<BTreeMap<String, RegistryAuth>>>("X-Registry-Config", value)?
            .unwrap_or_default(),
    )
}

/// base64 (URL-safe as docker encodes it, or standard; padding optional) of JSON `T`.
fn decode_header<T: DeserializeOwned + Default>(name: &str, value: &str) -> Result<T, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(T::default());
    }
    let bytes = base64_any(value).ok_or_else(|| {
        ApiError::bad_request(format!("invalid {name} header: not base64-encoded JSON"))
    })?;
    from_json(&bytes).map_err(|why| ApiError::bad_request(format!("invalid {name} header: {why}")))
}

/// Decodes base64 in either alphabet, with or without padding.
fn base64_any(value: &str) -> Option<Vec<u8>> {
    use base64::engine::{
        general_purpose, DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig,
    };
    let indifferent =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let url = GeneralPurpose::new(&base64::alphabet::URL_SAFE, indifferent);
    let standard = GeneralPurpose::new(&base64::alphabet::STANDARD, indifferent);
    url.decode(value)
        .or_else(|_| standard.decode(value))
        .or_else(|_| general_purpose::STANDARD.decode(value))
        .ok()
}

/// JSON `T`, with an error that says where the JSON is wrong but never quotes it (serde's
/// own messages can quote a value, and the values here are passwords).
fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Io | serde_json::error::Category::Eof => "incomplete JSON",
            serde_json::error::Category::Syntax => "not valid JSON",
            serde_json::error::Category::Data => "not JSON of docker's AuthConfig shape",
        };
        format!("{what} (at line {}, column {})", e.line(), e.column())
    })
}

/// `POST /auth`: checks the body's credentials against the registry with the engine's
/// login check (the same one `kiln login` runs) and stores nothing. Refused credentials are
/// docker's 401 with the registry's answer (`login attempt to http://host/v2/ failed with
/// status: 401 Unauthorized`).
pub async fn login(call: Call) -> HandlerResult {
    let bytes = crate::body::collect(call.body, crate::body::JSON_LIMIT).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "invalid JSON: got EOF while reading request body",
        ));
    }
    let credentials: RegistryAuth =
        from_json(&bytes).map_err(|why| ApiError::bad_request(format!("invalid JSON: {why}")))?;
    let check = LoginCheck {
        server: Some(credentials.serveraddress.clone()).filter(|s| !s.is_empty()),
        credentials,
        tls_verify: true,
    };
    let engine = call.engine.clone();
    let checked = tokio::task::spawn_blocking(move || engine.check_login(&check))
        .await
        .map_err(|e| ApiError::internal(format!("checking the login: {e}")))?;
    match checked {
        Ok(_) => Ok(crate::json_response(
            StatusCode::OK,
            &serde_json::json!({"Status": "Login Succeeded", "IdentityToken": ""}),
        )),
        // The registry's refusal alone, as dockerd words it (no "login to ... failed" first).
        Err(e) if e.is_unauthorized() => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            chain_message(e.kind()),
        )),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "pa55-w0rd-secret";

    fn url64(text: &str) -> String {
        base64::engine::general_purpose::URL_SAFE.encode(text)
    }

    #[test]
    fn x_registry_auth_in_every_encoding_clients_use() {
        let json =
            format!(r#"{{"username":"acc","password":"{SECRET}","serveraddress":"h:5000"}}"#);
        let padded = url64(&json);
        let unpadded = padded.trim_end_matches('=').to_string();
        let standard = base64::engine::general_purpose::STANDARD.encode(&json);
        for value in [padded, unpadded, standard] {
            let auth = decode_registry_auth(&value).unwrap();
            assert_eq!(
                auth,
                RegistryAuth {
                    serveraddress: "h:5000".into(),
                    ..RegistryAuth::basic("acc", SECRET)
                }
            );
        }
        // A `?` in the JSON makes `/` in standard base64 and `_` in base64url.
        let odd = r#"{"username":"a??","password":"p>>>"}"#;
        assert_eq!(decode_registry_auth(&url64(odd)).unwrap().username, "a??");
        for anonymous in ["e30=", "e30", "bnVsbA==", "", "  "] {
            assert!(
                decode_registry_auth(anonymous).unwrap().is_anonymous(),
                "{anonymous}"
            );
        }
    }

    #[test]
    fn bad_headers_are_400s_that_quote_nothing() {
        let wrong_type = url64(&format!(r#"{{"username":"acc","password":["{SECRET}"]}}"#));
        let truncated = url64(&format!(r#"{{"username":"acc","password":"{SECRET}"#));
        let not_json = url64(SECRET);
        for value in ["%%%not base64%%%", &wrong_type, &truncated, &not_json] {
            let err = decode_registry_auth(value).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert!(
                err.message.starts_with("invalid X-Registry-Auth header: "),
                "{}",
                err.message
            );
            assert!(!err.message.contains(SECRET), "{}", err.message);
            assert!(!format!("{err:?}").contains(SECRET));
        }
        let bad_map = url64(&format!(r#"{{"h:5000":"{SECRET}"}}"#));
        let err = decode_registry_config(&bad_map).unwrap_err();
        assert!(
            err.message
                .starts_with("invalid X-Registry-Config header: "),
            "{}",
            err.message
        );
        assert!(!err.message.contains(SECRET), "{}", err.message);
    }

    #[test]
    fn x_registry_config_maps_registries() {
        let json = format!(
            r#"{{"127.0.0.1:5000":{{"username":"acc","password":"{SECRET}","serveraddress":"127.0.0.1:5000"}},
                "https://index.docker.io/v1/":{{"auth":"dTpw"}}}}"#
        );
        let map = decode_registry_config(&url64(&json)).unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(map["127.0.0.1:5000"].password, SECRET);
        assert_eq!(map["https://index.docker.io/v1/"].auth, "dTpw");
        assert!(decode_registry_config("e30=").unwrap().is_empty());
        assert!(decode_registry_config("bnVsbA==").unwrap().is_empty());
        // What the engine is handed shows no secret when logged.
        assert!(!format!("{map:?}").contains(SECRET));
    }
}
