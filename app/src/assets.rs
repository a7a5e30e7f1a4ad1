//! Static assets, the "nginx for assets" role: compiled into the binary and served under
//! content-hashed names (`/assets/style.3f2a9c1e0b7d.css`) with
//! `Cache-Control: public, max-age=31536000, immutable`. A changed file gets a new name, so
//! browsers and the proxy may keep every version forever.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::AppError;

/// One static file and its content-hashed URL.
#[derive(Debug)]
pub struct Asset {
    url: String,
    content_type: &'static str,
    bytes: &'static [u8],
}

impl Asset {
    /// `stem.<first 12 hex digits of SHA-256>.extension`, under `/assets/`.
    fn new(stem: &str, extension: &str, content_type: &'static str, bytes: &'static [u8]) -> Self {
        let digest = Sha256::digest(bytes);
        let hash: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        Asset {
            url: format!("/assets/{stem}.{hash}.{extension}"),
            content_type,
            bytes,
        }
    }

    /// Where templates link to it.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn file_name(&self) -> &str {
        self.url.trim_start_matches("/assets/")
    }
}

pub static STYLESHEET: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "style",
        "css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/style.css"),
    )
});

pub static FAVICON: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "favicon",
        "svg",
        "image/svg+xml",
        include_bytes!("../assets/favicon.svg"),
    )
});

/// `GET /assets/{file}`: only the current hashed names exist; anything else is a 404.
#[tracing::instrument(skip_all, fields(%file))]
pub async fn serve(Path(file): Path<String>) -> Result<Response, AppError> {
    let asset = [&*STYLESHEET, &*FAVICON]
        .into_iter()
        .find(|asset| asset.file_name() == file)
        .ok_or(AppError::NotFound)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        asset.bytes,
    )
        .into_response())
}
