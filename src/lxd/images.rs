//! Images: looking one up, importing a split image, aliases.

use hyper::Method;
use serde_json::json;

use super::api::{Image, ImageAlias, ImageUploaded};
use super::client::{LxdClient, decode};
use super::error::LxdError;
use super::transport::{Body, Transport};

impl<T: Transport> LxdClient<T> {
    /// A local image by alias or fingerprint (prefix).
    pub async fn local_image(&self, alias_or_fingerprint: &str) -> Result<Option<Image>, LxdError> {
        let doing = format!("looking up image '{alias_or_fingerprint}'");
        if let Some(alias) = self
            .get_opt::<ImageAlias>(
                &doing,
                &format!("/1.0/images/aliases/{alias_or_fingerprint}"),
            )
            .await?
        {
            return self
                .get_opt(&doing, &format!("/1.0/images/{}", alias.target))
                .await;
        }
        if alias_or_fingerprint.len() >= 12
            && alias_or_fingerprint.chars().all(|c| c.is_ascii_hexdigit())
        {
            return self
                .get_opt(&doing, &format!("/1.0/images/{alias_or_fingerprint}"))
                .await;
        }
        Ok(None)
    }

    /// Uploads a split image (metadata tarball + rootfs) as `multipart/form-data` and returns
    /// its fingerprint.
    pub async fn import_image(
        &self,
        body: Body,
        boundary: &str,
        public: bool,
    ) -> Result<String, LxdError> {
        let metadata = self
            .call(
                "importing the image",
                Method::POST,
                "/1.0/images",
                vec![
                    (
                        "content-type",
                        format!("multipart/form-data; boundary={boundary}"),
                    ),
                    ("x-lxd-public", if public { "1".into() } else { "0".into() }),
                ],
                body,
            )
            .await?;
        let uploaded: ImageUploaded = decode("importing the image", metadata)?;
        Ok(uploaded.fingerprint)
    }

    /// Deletes an image (and so its aliases); a missing one is fine.
    pub async fn delete_image(&self, fingerprint: &str) -> Result<bool, LxdError> {
        self.delete_opt(
            &format!("deleting image {fingerprint}"),
            &format!("/1.0/images/{fingerprint}"),
        )
        .await
    }

    /// Points `alias` at `fingerprint`, creating or moving it.
    pub async fn set_alias(&self, alias: &str, fingerprint: &str) -> Result<(), LxdError> {
        let doing = format!("setting image alias '{alias}'");
        let exists = self
            .get_opt::<ImageAlias>(&doing, &format!("/1.0/images/aliases/{alias}"))
            .await?
            .is_some();
        if exists {
            self.send_json(
                &doing,
                Method::PUT,
                &format!("/1.0/images/aliases/{alias}"),
                &json!({ "target": fingerprint, "description": "" }),
            )
            .await?;
        } else {
            self.send_json(
                &doing,
                Method::POST,
                "/1.0/images/aliases",
                &json!({ "name": alias, "target": fingerprint }),
            )
            .await?;
        }
        Ok(())
    }
}
