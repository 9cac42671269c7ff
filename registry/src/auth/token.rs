//! The registry's auth scheme and the bearer tokens fetched for it, cached per scope.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

/// How a registry wants requests authenticated, learned from its `/v2/` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthScheme {
    /// No authentication.
    Anonymous,
    /// HTTP basic authentication with the stored credentials.
    Basic,
    /// Bearer tokens from a token server.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter to send.
        service: Option<String>,
    },
}

/// A token and when to stop using it.
#[derive(Debug, Clone)]
struct CachedToken {
    token: String,
    expires: Instant,
}

/// Bearer tokens per (registry, scope set).
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    tokens: Mutex<HashMap<(String, String), CachedToken>>,
    /// Held while fetching, so blobs starting together share one token request.
    fetching: Mutex<()>,
}

impl TokenCache {
    /// Serializes token fetches; check the cache again after taking it.
    pub(crate) async fn fetch_guard(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.fetching.lock().await
    }

    /// A cached, unexpired token.
    pub(crate) async fn get(&self, registry: &str, scope: &str) -> Option<String> {
        let tokens = self.tokens.lock().await;
        tokens
            .get(&(registry.to_string(), scope.to_string()))
            .filter(|t| t.expires > Instant::now())
            .map(|t| t.token.clone())
    }

    /// Caches a token valid for `lifetime` (used until 30 s before it ends).
    pub(crate) async fn put(&self, registry: &str, scope: &str, token: String, lifetime: Duration) {
        let expires = Instant::now() + lifetime.saturating_sub(Duration::from_secs(30));
        self.tokens.lock().await.insert(
            (registry.to_string(), scope.to_string()),
            CachedToken { token, expires },
        );
    }

    /// Forgets a token the registry rejected.
    pub(crate) async fn forget(&self, registry: &str, scope: &str) {
        self.tokens
            .lock()
            .await
            .remove(&(registry.to_string(), scope.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn caches_per_scope_and_expires() {
        let cache = TokenCache::default();
        cache
            .put(
                "r",
                "repository:a:pull",
                "t1".into(),
                Duration::from_secs(300),
            )
            .await;
        cache
            .put(
                "r",
                "repository:b:pull",
                "t2".into(),
                Duration::from_secs(10),
            )
            .await;
        assert_eq!(
            cache.get("r", "repository:a:pull").await.as_deref(),
            Some("t1")
        );
        assert_eq!(cache.get("r", "repository:a:push").await, None);
        assert_eq!(cache.get("other", "repository:a:pull").await, None);
        // A token with under 30 s of life is treated as expired already.
        assert_eq!(cache.get("r", "repository:b:pull").await, None);
        cache.forget("r", "repository:a:pull").await;
        assert_eq!(cache.get("r", "repository:a:pull").await, None);
    }
}
