//! The environment's profile and what it names: profiles, networks, storage pools.

use hyper::Method;

use super::api::{Network, Profile, ProfileSpec, StoragePool};
use super::client::LxdClient;
use super::error::LxdError;
use super::transport::Transport;

impl<T: Transport> LxdClient<T> {
    pub async fn profile(&self, name: &str) -> Result<Option<Profile>, LxdError> {
        self.get_opt(
            &format!("reading profile '{name}'"),
            &format!("/1.0/profiles/{name}"),
        )
        .await
    }

    /// Creates the profile, or replaces its config, devices and description.
    pub async fn put_profile(
        &self,
        name: &str,
        exists: bool,
        profile: &ProfileSpec,
    ) -> Result<(), LxdError> {
        if exists {
            self.send_json(
                &format!("updating profile '{name}'"),
                Method::PUT,
                &format!("/1.0/profiles/{name}"),
                profile,
            )
            .await?;
        } else {
            #[derive(serde::Serialize)]
            struct NewProfile<'a> {
                name: &'a str,
                #[serde(flatten)]
                spec: &'a ProfileSpec,
            }
            let body = NewProfile {
                name,
                spec: profile,
            };
            self.send_json(
                &format!("creating profile '{name}'"),
                Method::POST,
                "/1.0/profiles",
                &body,
            )
            .await?;
        }
        Ok(())
    }

    /// Deletes a profile; a missing one is fine. Returns whether it existed.
    pub async fn delete_profile(&self, name: &str) -> Result<bool, LxdError> {
        self.delete_opt(
            &format!("deleting profile '{name}'"),
            &format!("/1.0/profiles/{name}"),
        )
        .await
    }

    pub async fn network(&self, name: &str) -> Result<Option<Network>, LxdError> {
        self.get_opt(
            &format!("reading network '{name}'"),
            &format!("/1.0/networks/{name}"),
        )
        .await
    }

    pub async fn storage_pool(&self, name: &str) -> Result<Option<StoragePool>, LxdError> {
        self.get_opt(
            &format!("reading storage pool '{name}'"),
            &format!("/1.0/storage-pools/{name}"),
        )
        .await
    }
}
