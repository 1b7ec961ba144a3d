//! TLS for `https://` upstreams: rustls with the `ring` provider, and the
//! certificate authorities an upstream's certificate may chain to.
//!
//! By default those are the Mozilla roots compiled in (`webpki-roots`), so
//! the binary needs no certificate store on the machine. A [`CaBundle`]
//! (`POSITIONS_SOURCE_CA_FILE`) **replaces** them: a source behind a
//! private CA is then trusted through that CA alone, and a certificate from
//! any other authority, public ones included, is refused. Narrowing trust
//! to what the operator named is the safer reading of the setting; an
//! operator who wants both concatenates the public roots into the file.
//!
//! Failures are sorted here too: [`tls_failure`] finds a TLS error in a
//! client error's causes and says what went wrong without naming the host.

use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{CertificateError, ClientConfig, RootCertStore};

/// A PEM bundle of certificate authorities trusted for an `https://`
/// source, read and checked once, at start-up.
#[derive(Clone, PartialEq, Eq)]
pub struct CaBundle {
    path: PathBuf,
    certificates: Vec<CertificateDer<'static>>,
}

/// Why a CA bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum InvalidCaFile {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not PEM, or holds no certificate.
    #[error("{} is not a PEM certificate bundle: {reason}", path.display())]
    NotPem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

impl CaBundle {
    /// Reads the PEM bundle at `path`: one or more `CERTIFICATE` sections
    /// (other sections, such as keys, are skipped).
    ///
    /// # Errors
    ///
    /// [`InvalidCaFile`] if the file cannot be read, is not PEM, holds no
    /// certificate, or holds one that cannot serve as a trust anchor.
    pub fn load(path: &Path) -> Result<Self, InvalidCaFile> {
        let pem = std::fs::read(path).map_err(|source| InvalidCaFile::Unreadable { path: path.to_owned(), source })?;
        Self::from_pem(path, &pem)
    }

    /// The bundle in `pem`, read from `path` (which is only named in
    /// errors and `Debug` output).
    ///
    /// # Errors
    ///
    /// [`InvalidCaFile::NotPem`], as for [`CaBundle::load`].
    pub fn from_pem(path: &Path, pem: &[u8]) -> Result<Self, InvalidCaFile> {
        let not_pem = |reason: String| InvalidCaFile::NotPem { path: path.to_owned(), reason };
        let certificates =
            CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|e| not_pem(e.to_string()))?;
        if certificates.is_empty() {
            return Err(not_pem("no CERTIFICATE section".to_owned()));
        }
        let bundle = Self { path: path.to_owned(), certificates };
        bundle.roots().map_err(|e| not_pem(e.to_string()))?;
        Ok(bundle)
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many certificates it holds.
    pub fn len(&self) -> usize {
        self.certificates.len()
    }

    /// Whether it holds none (never, once loaded).
    pub fn is_empty(&self) -> bool {
        self.certificates.is_empty()
    }

    fn roots(&self) -> Result<RootCertStore, rustls::Error> {
        let mut roots = RootCertStore::empty();
        for certificate in &self.certificates {
            roots.add(certificate.clone())?;
        }
        Ok(roots)
    }
}

impl fmt::Debug for CaBundle {
    /// The path and a count: the certificates themselves are kilobytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaBundle").field("path", &self.path).field("certificates", &self.certificates.len()).finish()
    }
}

/// The client configuration: `ring`, rustls's safe protocol versions, and
/// `ca`'s authorities or else the webpki roots.
pub(super) fn client_config(ca: Option<&CaBundle>) -> Result<ClientConfig, rustls::Error> {
    // The provider is named rather than taken from the process default, so
    // that another crate enabling a second provider cannot make it ambiguous.
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?;
    let builder = match ca {
        Some(ca) => builder.with_root_certificates(ca.roots()?),
        None => hyper_rustls::ConfigBuilderExt::with_webpki_roots(builder),
    };
    Ok(builder.with_no_client_auth())
}

/// What went wrong in a TLS handshake, if a TLS error is among `error`'s
/// causes; worded so as not to name the host (a name mismatch lists the
/// names the certificate holds and the one expected).
pub(super) fn tls_failure(error: &(dyn StdError + 'static)) -> Option<String> {
    let tls = find_tls(error)?;
    Some(match tls {
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => "invalid peer certificate: not valid for the upstream's name".to_owned(),
        other => other.to_string(),
    })
}

/// The first [`rustls::Error`] among `error`'s causes. An `io::Error` shows
/// the error it wraps in its message but skips it in `source()`, so each
/// one is opened by hand.
fn find_tls<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(error);
    while let Some(current) = next {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(tls) =
            current.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref).and_then(|inner| find_tls(inner))
        {
            return Some(tls);
        }
        next = current.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).expect("self-signed").pem()
    }

    #[test]
    fn a_bundle_is_pem_with_a_certificate() {
        let path = Path::new("ca.pem");
        let pem = ca_pem();
        let bundle = CaBundle::from_pem(path, format!("# a comment\n{pem}{pem}").as_bytes()).expect("valid");
        assert_eq!((bundle.len(), bundle.path()), (2, path));
        assert!(client_config(Some(&bundle)).is_ok());
        assert!(format!("{bundle:?}").contains("certificates: 2"));
        let cases: [(&[u8], &str); 3] = [
            (b"", "no CERTIFICATE section"),
            (b"hello", "no CERTIFICATE section"),
            (
                b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
                "is not a PEM certificate bundle",
            ),
        ];
        for (pem, expected) in cases {
            let err = CaBundle::from_pem(path, pem).expect_err(expected);
            assert!(err.to_string().contains(expected) && err.to_string().contains("ca.pem"), "{err}");
        }
        let missing = CaBundle::load(Path::new("/nonexistent/ca.pem")).expect_err("missing");
        assert!(missing.to_string().starts_with("cannot read /nonexistent/ca.pem"), "{missing}");
    }

    #[test]
    fn the_default_trusts_the_webpki_roots() {
        assert!(client_config(None).is_ok());
    }

    #[test]
    fn a_tls_error_is_found_behind_io_errors_and_does_not_name_the_host() {
        let name = rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: rustls::pki_types::ServerName::try_from("analytics.internal").expect("name"),
            presented: vec!["other.internal".into()],
        });
        let wrapped = std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, name));
        let text = tls_failure(&wrapped).expect("found");
        assert!(!text.contains("internal"), "{text}");
        let issuer = std::io::Error::other(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer));
        assert_eq!(tls_failure(&issuer).as_deref(), Some("invalid peer certificate: UnknownIssuer"));
        assert_eq!(tls_failure(&std::io::Error::other("refused")), None);
    }
}
