//! Authentication: challenges, credentials and bearer tokens.

mod challenge;
mod credentials;
mod given;
mod token;

pub use challenge::{parse_challenges, Challenge};
pub use credentials::{
    auth_key, CredentialError, CredentialStore, Credentials, DockerConfig, DOCKER_HUB_AUTH_KEY,
    IDENTITY_TOKEN_USER,
};
pub use given::{registry_host, RegistryAuth};
pub(crate) use token::{AuthScheme, TokenCache};
