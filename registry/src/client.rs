//! The transport: endpoints (HTTPS, insecure, plain HTTP), authentication, retries, errors.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use reqwest::header::{HeaderMap, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use tokio::sync::Mutex;

use crate::auth::{
    parse_challenges, AuthScheme, Credentials, RegistryAuth, TokenCache, IDENTITY_TOKEN_USER,
};
use crate::config::{is_loopback, ClientConfig};
use crate::error::{Error, Result};

/// A registry client. Cheap to clone; clones share connections, endpoints and tokens.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// Verifies certificates against the system roots.
    http: reqwest::Client,
    /// Accepts any certificate, for insecure registries only.
    http_insecure: reqwest::Client,
    pub(crate) config: ClientConfig,
    endpoints: Mutex<HashMap<String, Endpoint>>,
    tokens: TokenCache,
}

/// How to reach one registry, learned once per client by pinging `/v2/`.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// `https://host[:port]` or `http://host[:port]`.
    pub(crate) base: String,
    insecure_tls: bool,
    auth: AuthScheme,
}

/// The host to talk to for a reference's domain (Docker Hub's API lives elsewhere).
pub(crate) fn api_host(registry: &str) -> &str {
    if registry == crate::reference::DEFAULT_DOMAIN {
        "registry-1.docker.io"
    } else {
        registry
    }
}

/// The access a request needs, as a token scope.
pub(crate) fn pull_scope(path: &str) -> String {
    format!("repository:{path}:pull")
}

/// The access a push needs.
pub(crate) fn push_scope(path: &str) -> String {
    format!("repository:{path}:pull,push")
}

impl Client {
    /// A client with `config`.
    pub fn new(config: ClientConfig) -> Result<Client> {
        let build = |insecure: bool| {
            reqwest::Client::builder()
                .connect_timeout(config.connect_timeout)
                .read_timeout(config.read_timeout)
                .danger_accept_invalid_certs(insecure)
                .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|source| Error::Transport {
                    url: String::new(),
                    error: source,
                })
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http: build(false)?,
                http_insecure: build(true)?,
                config,
                endpoints: Mutex::new(HashMap::new()),
                tokens: TokenCache::default(),
            }),
        })
    }

    /// The client's settings.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    fn http(&self, endpoint: &Endpoint) -> &reqwest::Client {
        if endpoint.insecure_tls {
            &self.inner.http_insecure
        } else {
            &self.inner.http
        }
    }

    /// Sleeps before attempt `attempt` (2 = first retry): backoff doubling each time.
    pub(crate) async fn backoff(&self, attempt: u32) {
        let factor = 1u32 << attempt.saturating_sub(2).min(8);
        tokio::time::sleep(self.inner.config.retry_backoff * factor).await;
    }

    /// Finds how to reach `registry`: the scheme that answers and the auth it asks for.
    pub(crate) async fn endpoint(&self, registry: &str) -> Result<Endpoint> {
        if let Some(ep) = self.inner.endpoints.lock().await.get(registry) {
            return Ok(ep.clone());
        }
        let host = api_host(registry);
        // (scheme, skip certificate verification)
        // An insecure registry (listed, or --tls-verify=false) is tried over HTTPS without
        // verification, then plain HTTP, as docker does; an unlisted loopback one is plain HTTP.
        let candidates: &[(&str, bool)] = if self.inner.config.is_insecure(registry) {
            &[("https", true), ("http", false)]
        } else if is_loopback(registry) {
            &[("http", false)]
        } else {
            &[("https", false)]
        };
        let mut last_err = None;
        for (i, (scheme, insecure_tls)) in candidates.iter().enumerate() {
            let base = format!("{scheme}://{host}");
            let client = if *insecure_tls {
                &self.inner.http_insecure
            } else {
                &self.inner.http
            };
            let url = format!("{base}/v2/");
            let has_fallback = i + 1 < candidates.len();
            let probe = if has_fallback {
                // One try: a failure means "not this scheme", not "retry".
                client
                    .get(&url)
                    .send()
                    .await
                    .map_err(|source| Error::Transport {
                        url: url.clone(),
                        error: source,
                    })
            } else {
                self.retrying(&url, || client.get(&url).send()).await
            };
            let resp = match probe {
                Ok(r) if has_fallback && r.status() == StatusCode::BAD_REQUEST => {
                    // A TLS server answering plain HTTP, or the reverse.
                    last_err = Some(status_error(Method::GET, &url, r).await);
                    continue;
                }
                Ok(r) => r,
                Err(e) if i + 1 < candidates.len() => {
                    tracing::debug!("{url}: {e}; trying the next scheme");
                    last_err = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let auth = if resp.status() == StatusCode::UNAUTHORIZED {
                scheme_from_headers(resp.headers())
            } else if resp.status().is_success() {
                AuthScheme::Anonymous
            } else {
                // Not a registry speaking the v2 API (or one failing): say what it answered.
                return Err(status_error(Method::GET, &url, resp).await);
            };
            let ep = Endpoint {
                base,
                insecure_tls: *insecure_tls,
                auth,
            };
            self.inner
                .endpoints
                .lock()
                .await
                .insert(registry.to_string(), ep.clone());
            return Ok(ep);
        }
        Err(last_err.unwrap_or_else(|| Error::Invalid {
            what: "registry".into(),
            message: format!("no way to reach {registry}"),
        }))
    }

    /// Sends a request (no auth), retrying transient failures and 5xx with backoff.
    async fn retrying<F, Fut>(&self, url: &str, send: F) -> Result<Response>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = reqwest::Result<Response>>,
    {
        let max = self.inner.config.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            match send().await {
                Ok(resp) if resp.status().is_server_error() && attempt < max => {
                    tracing::debug!("{url}: {}; retrying", resp.status());
                }
                Ok(resp) => return Ok(resp),
                Err(source) if attempt >= max || source.is_builder() => {
                    return Err(Error::Transport {
                        url: url.to_string(),
                        error: source,
                    })
                }
                Err(e) => tracing::debug!("{url}: {e}; retrying"),
            }
            attempt += 1;
            self.backoff(attempt).await;
        }
    }

    /// Credentials for `registry`, from the configured files.
    fn credentials(&self, registry: &str) -> Result<Option<Credentials>> {
        Ok(self.inner.config.credentials.get(registry)?)
    }

    /// The `Authorization` header value for `scope` on `registry`, fetching a token if needed.
    async fn authorization(
        &self,
        registry: &str,
        ep: &Endpoint,
        scope: &str,
    ) -> Result<Option<String>> {
        // A bearer token handed in goes as it is, whatever the registry asked for (dockerd's
        // pass-through of `registrytoken`).
        if let Some(token) = self.inner.config.credentials.registry_token(registry) {
            return Ok(Some(format!("Bearer {token}")));
        }
        match &ep.auth {
            AuthScheme::Anonymous => Ok(None),
            AuthScheme::Basic => Ok(self
                .credentials(registry)?
                .map(|c| format!("Basic {}", c.basic_token()))),
            AuthScheme::Bearer { realm, service } => {
                if let Some(token) = self.inner.tokens.get(registry, scope).await {
                    return Ok(Some(format!("Bearer {token}")));
                }
                let _fetching = self.inner.tokens.fetch_guard().await;
                if let Some(token) = self.inner.tokens.get(registry, scope).await {
                    return Ok(Some(format!("Bearer {token}")));
                }
                let creds = self.credentials(registry)?;
                let (token, lifetime) = self
                    .fetch_token(
                        registry,
                        realm,
                        service.as_deref(),
                        Some(scope),
                        creds.as_ref(),
                    )
                    .await?;
                self.inner
                    .tokens
                    .put(registry, scope, token.clone(), lifetime)
                    .await;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Asks the token server for a token (docker's GET flow, with basic auth when we have
    /// credentials).
    async fn fetch_token(
        &self,
        registry: &str,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
        creds: Option<&Credentials>,
    ) -> Result<(String, Duration)> {
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = service {
            query.push(("service", s));
        }
        for s in scope.into_iter().flat_map(|s| s.split(' ')) {
            query.push(("scope", s));
        }
        // An identity token (user `<token>`, as credential helpers return for Docker Hub) is
        // exchanged through the OAuth2 refresh-token POST, as docker does.
        let identity_token = creds
            .filter(|c| c.username == IDENTITY_TOKEN_USER)
            .map(|c| c.password.as_str());
        let mut form = query.clone();
        if let Some(token) = identity_token {
            form.extend([
                ("grant_type", "refresh_token"),
                ("refresh_token", token),
                ("client_id", "kiln"),
            ]);
        }
        let make = || {
            let req = match identity_token {
                Some(_) => self.inner.http.post(realm).form(&form),
                None => {
                    let mut req = self.inner.http.get(realm).query(&query);
                    if let Some(c) = creds {
                        req = req.basic_auth(&c.username, Some(&c.password));
                    }
                    req
                }
            };
            req.send()
        };
        let resp = self.retrying(realm, make).await?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let (_, message) = error_body(resp).await;
            return Err(Error::Unauthorized {
                registry: registry.to_string(),
                message: message.or_else(|| Some(format!("token server {realm}: {status}"))),
            });
        }
        if !status.is_success() {
            return Err(status_error(Method::GET, realm, resp).await);
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let bytes = read_limited(resp, 1 << 20, realm).await?;
        let body: TokenResponse = serde_json::from_slice(&bytes).map_err(|e| Error::Invalid {
            what: "token response".into(),
            message: e.to_string(),
        })?;
        let token = body
            .token
            .or(body.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Invalid {
                what: "token response".into(),
                message: "no token".into(),
            })?;
        // The spec's default lifetime is 60 s.
        Ok((
            token,
            Duration::from_secs(body.expires_in.unwrap_or(60).max(60)),
        ))
    }

    /// Sends an authenticated request to `registry`. `make` builds it from a base URL and is
    /// called again for each attempt (so a streamed body is reopened). Retries connection
    /// failures and 5xx with backoff; a 401 refreshes the token once; other statuses are
    /// returned for the caller to judge.
    pub(crate) async fn send<F>(&self, registry: &str, scope: &str, make: F) -> Result<Response>
    where
        F: Fn(&reqwest::Client, &str) -> Result<RequestBuilder>,
    {
        self.send_inner(registry, scope, true, make).await
    }

    /// Like [`send`](Self::send) but without retrying connection failures or 5xx: for
    /// requests inside an upload session, which the caller restarts as a whole.
    pub(crate) async fn send_once<F>(
        &self,
        registry: &str,
        scope: &str,
        make: F,
    ) -> Result<Response>
    where
        F: Fn(&reqwest::Client, &str) -> Result<RequestBuilder>,
    {
        self.send_inner(registry, scope, false, make).await
    }

    async fn send_inner<F>(
        &self,
        registry: &str,
        scope: &str,
        retry: bool,
        make: F,
    ) -> Result<Response>
    where
        F: Fn(&reqwest::Client, &str) -> Result<RequestBuilder>,
    {
        let max = if retry {
            self.inner.config.max_attempts.max(1)
        } else {
            1
        };
        let mut attempt = 1;
        let mut refreshed = false;
        loop {
            let ep = self.endpoint(registry).await?;
            let auth = self.authorization(registry, &ep, scope).await?;
            let mut req = make(self.http(&ep), &ep.base)?;
            if let Some(value) = &auth {
                req = req.header(AUTHORIZATION, value);
            }
            let req = req.build().map_err(|source| Error::Transport {
                url: ep.base.clone(),
                error: source,
            })?;
            let method = req.method().clone();
            let url = req.url().to_string();
            match self.http(&ep).execute(req).await {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                    if !refreshed && matches!(ep.auth, AuthScheme::Bearer { .. }) {
                        // The token may have expired or lack a scope: fetch a fresh one once.
                        refreshed = true;
                        self.inner.tokens.forget(registry, scope).await;
                        continue;
                    }
                    if ep.auth == AuthScheme::Anonymous {
                        // The registry started asking for auth: learn the scheme again.
                        let scheme = scheme_from_headers(resp.headers());
                        if scheme != AuthScheme::Anonymous && !refreshed {
                            refreshed = true;
                            if let Some(e) = self.inner.endpoints.lock().await.get_mut(registry) {
                                e.auth = scheme;
                            }
                            continue;
                        }
                    }
                    let (_, message) = error_body(resp).await;
                    return Err(Error::Unauthorized {
                        registry: registry.to_string(),
                        message,
                    });
                }
                Ok(resp) if is_retryable_status(resp.status()) && attempt < max => {
                    tracing::debug!("{method} {url}: {}; retrying", resp.status());
                }
                Ok(resp) => return Ok(resp),
                Err(source) if attempt >= max || source.is_builder() => {
                    return Err(Error::Transport { url, error: source });
                }
                Err(e) => tracing::debug!("{method} {url}: {e}; retrying"),
            }
            attempt += 1;
            self.backoff(attempt).await;
        }
    }

    /// The digest a reference points at now, from a HEAD of its manifest (no body moves);
    /// for `--pull` checks and FROM resolution. Falls back to a GET when the registry does
    /// not announce the digest.
    pub async fn resolve(
        &self,
        reference: &crate::reference::Reference,
    ) -> Result<crate::digest::Digest> {
        if let Some(d) = reference.digest() {
            return Ok(d.clone());
        }
        let registry = reference.domain();
        let path = reference.path().to_string();
        let target = reference.manifest_reference();
        let resp = self
            .send(registry, &pull_scope(&path), |http, base| {
                let mut req = http.head(format!("{base}/v2/{path}/manifests/{target}"));
                for t in crate::manifest::ACCEPTED_MANIFEST_TYPES {
                    req = req.header(reqwest::header::ACCEPT, t);
                }
                Ok(req)
            })
            .await?;
        let repository = format!("{}/{}", api_host(registry), path);
        let resp = expect_success(
            resp,
            Method::HEAD,
            &format!("manifest {target}"),
            &repository,
        )
        .await?;
        let announced = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| crate::digest::Digest::parse(v).ok());
        match announced {
            Some(d) => Ok(d),
            None => Ok(self.fetch_manifest(reference, &target).await?.digest),
        }
    }

    /// Checks `auth` against `registry` the way `docker login` (dockerd's `loginV2`) does,
    /// without storing anything: a `GET /v2/` with basic auth, or a token request with the
    /// credentials for a bearer registry. A refused basic login is [`Error::LoginFailed`],
    /// a refused token request [`Error::Unauthorized`].
    pub async fn login(&self, registry: &str, auth: &RegistryAuth) -> Result<()> {
        let ep = self.endpoint(registry).await?;
        let url = format!("{}/v2/", ep.base);
        let client = self.http(&ep);
        if let Some(token) = auth.registry_token() {
            let resp = self
                .retrying(&url, || client.get(&url).bearer_auth(token).send())
                .await?;
            return login_answer(&url, resp.status());
        }
        let creds = auth.credentials(registry)?;
        match (&ep.auth, creds) {
            (AuthScheme::Anonymous, _) => Ok(()),
            (_, None) => Err(Error::LoginFailed {
                url,
                status: StatusCode::UNAUTHORIZED,
            }),
            (AuthScheme::Basic, Some(creds)) => {
                let resp = self
                    .retrying(&url, || {
                        client
                            .get(&url)
                            .basic_auth(&creds.username, Some(&creds.password))
                            .send()
                    })
                    .await?;
                login_answer(&url, resp.status())
            }
            (AuthScheme::Bearer { realm, service }, Some(creds)) => self
                .fetch_token(registry, realm, service.as_deref(), None, Some(&creds))
                .await
                .map(|_| ()),
        }
    }
}

/// A login's `GET /v2/` answer: 200 is success, anything else dockerd's error.
fn login_answer(url: &str, status: StatusCode) -> Result<()> {
    if status == StatusCode::OK {
        Ok(())
    } else {
        Err(Error::LoginFailed {
            url: url.to_string(),
            status,
        })
    }
}

fn is_retryable_status(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// The auth scheme a 401's challenges ask for: bearer preferred, then basic.
fn scheme_from_headers(headers: &HeaderMap) -> AuthScheme {
    let challenges: Vec<_> = headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_challenges)
        .collect();
    if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
        if let Some(realm) = bearer.param("realm") {
            return AuthScheme::Bearer {
                realm: realm.to_string(),
                service: bearer.param("service").map(str::to_string),
            };
        }
    }
    if challenges.iter().any(|c| c.scheme == "basic") {
        return AuthScheme::Basic;
    }
    AuthScheme::Anonymous
}

/// Reads a response body up to `limit` bytes; more is an error.
pub(crate) async fn read_limited(resp: Response, limit: usize, url: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|source| Error::Transport {
            url: url.to_string(),
            error: source,
        })?;
        if out.len() + chunk.len() > limit {
            return Err(Error::Invalid {
                what: "response".into(),
                message: format!("{url}: body larger than {limit} bytes"),
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The registry's error JSON (`{"errors":[{"code","message"}]}`): first code and message.
pub(crate) async fn error_body(resp: Response) -> (Option<String>, Option<String>) {
    let bytes = read_limited(resp, 64 << 10, "").await.unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<Entry>,
        #[serde(default)]
        details: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_slice::<Body>(&bytes) {
        Ok(body) if !body.errors.is_empty() => {
            let first = &body.errors[0];
            (first.code.clone(), first.message.clone())
        }
        Ok(body) if body.details.is_some() => (None, body.details),
        _ => {
            let text = String::from_utf8_lossy(&bytes)
                .trim()
                .chars()
                .take(200)
                .collect::<String>();
            (None, Some(text).filter(|t| !t.is_empty()))
        }
    }
}

/// Turns an unexpected response into [`Error::Status`] with the registry's message.
pub(crate) async fn status_error(method: Method, url: &str, resp: Response) -> Error {
    let status = resp.status();
    let (code, message) = error_body(resp).await;
    Error::Status {
        method: method.to_string(),
        url: url.to_string(),
        status,
        code,
        message,
    }
}

/// Maps a 404 to [`Error::NotFound`] and any other failure to [`Error::Status`].
pub(crate) async fn expect_success(
    resp: Response,
    method: Method,
    what: &str,
    repository: &str,
) -> Result<Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let url = resp.url().to_string();
    if status == StatusCode::NOT_FOUND {
        let (code, message) = error_body(resp).await;
        return Err(Error::NotFound {
            what: what.to_string(),
            repository: repository.to_string(),
            message: message.or(code),
        });
    }
    if status == StatusCode::FORBIDDEN {
        let (_, message) = error_body(resp).await;
        return Err(Error::Unauthorized {
            registry: repository.split('/').next().unwrap_or("").to_string(),
            message,
        });
    }
    Err(status_error(method, &url, resp).await)
}
