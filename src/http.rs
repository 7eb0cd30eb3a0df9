//! The HTTP client every AWS call goes through: Route 53, the credential
//! providers and instance metadata.
//!
//! It is the SDK's own client (hyper with rustls), set up as the SDK's
//! default one is, with one difference: rustls does its cryptography with
//! `ring` rather than `aws-lc-rs`, which makes the stripped binary 2.0 MiB
//! smaller (`bench/notes.md`). Everything else is the SDK's:
//! server certificates are checked against the platform's root store
//! (`SSL_CERT_FILE`, `SSL_CERT_DIR` or the OpenSSL default bundle, as
//! rustls-native-certs finds them), with the same cipher suites and TLS
//! versions; `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY` are honoured, as the
//! default client does since behavior version 2025-08-07 (Route 53 has no
//! VPC endpoint, so a private subnet may only reach it through a proxy).
//!
//! The SDK's crates are built without their `default-https-client` feature,
//! so a client the agent forgets to hand this one to has no HTTP client at
//! all and fails on its first request, rather than linking aws-lc-rs back.

use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// A new client. It keeps one connector (connection pool, TLS settings and
/// its copy of the root store) per set of timeouts, so a process should
/// make one and share it: IMDS calls, from the agent and from the SDK's
/// region and credential providers, then share a connector.
pub fn client() -> SharedHttpClient {
    // As the SDK builds its default client, but for the crypto provider:
    // one connector per set of connector settings (timeouts), each with
    // the sleep implementation of the runtime that asked for it.
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector =
            ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(CryptoMode::Ring));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}
