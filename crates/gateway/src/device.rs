//! Device identity: a persisted Ed25519 key and the v3 connect signature (reference §1.5).
//!
//! Remote gateways only grant scopes to paired devices, and pairing is keyed by the device id
//! (hex SHA-256 of the public key), so the key must survive restarts: it lives in a 0600 file
//! under the state directory. The file holds one line, the 32-byte Ed25519 seed in base64url
//! without padding, after an explanatory comment.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::GatewayError;

const KEY_FILE_HEADER: &str = "# clawbridge OpenClaw device key (Ed25519 seed, base64url). Keep secret; \
replacing it makes the gateway see a new device that must be approved again.\n";

/// The fields bound by the v3 device signature, in the order of reference §1.5.
#[derive(Clone, PartialEq, Eq)]
pub struct SignatureFields {
    /// `client.id`.
    pub client_id: String,
    /// `client.mode`.
    pub client_mode: String,
    /// `role`.
    pub role: String,
    /// `scopes`, joined with `,` in the payload.
    pub scopes: Vec<String>,
    /// `device.signedAt`, milliseconds since the epoch.
    pub signed_at_ms: u64,
    /// `auth.token` (else device/bootstrap token), empty when none is sent.
    pub token: String,
    /// The challenge nonce.
    pub nonce: String,
    /// `client.platform`; lower-cased and trimmed in the payload.
    pub platform: String,
    /// `client.deviceFamily`; empty leaves a trailing `|`.
    pub device_family: String,
}

impl fmt::Debug for SignatureFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignatureFields")
            .field("client_id", &self.client_id)
            .field("client_mode", &self.client_mode)
            .field("role", &self.role)
            .field("scopes", &self.scopes)
            .field("signed_at_ms", &self.signed_at_ms)
            .field("token", &if self.token.is_empty() { "" } else { "[REDACTED]" })
            .field("nonce", &self.nonce)
            .field("platform", &self.platform)
            .field("device_family", &self.device_family)
            .finish()
    }
}

impl SignatureFields {
    /// The exact UTF-8 string that is signed:
    /// `v3|deviceId|clientId|mode|role|scopes|signedAt|token|nonce|platform|deviceFamily`.
    ///
    /// The result contains the token; callers should not log it.
    pub fn payload_v3(&self, device_id: &str) -> String {
        format!(
            "v3|{device_id}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.client_id,
            self.client_mode,
            self.role,
            self.scopes.join(","),
            self.signed_at_ms,
            self.token,
            self.nonce,
            normalize_metadata(&self.platform),
            normalize_metadata(&self.device_family),
        )
    }
}

impl Drop for SignatureFields {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.token);
    }
}

fn normalize_metadata(value: &str) -> String {
    value.trim().to_lowercase()
}

/// This client's Ed25519 identity towards the gateway.
pub struct DeviceIdentity {
    signing_key: SigningKey,
    id: String,
    public_key_b64: String,
}

impl fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceIdentity").field("id", &self.id).finish_non_exhaustive()
    }
}

impl DeviceIdentity {
    /// Builds an identity from a 32-byte Ed25519 seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let signing_key = SigningKey::from_bytes(seed);
        let public = signing_key.verifying_key().to_bytes();
        Self { id: device_id_for(&public), public_key_b64: URL_SAFE_NO_PAD.encode(public), signing_key }
    }

    /// Loads the key at `path`, or creates it (mode 0600, never overwriting) when missing.
    ///
    /// # Errors
    /// [`GatewayError::DeviceKey`] naming the path when the file is readable by group or others
    /// (with the `chmod` fix), corrupt, or cannot be read or written.
    pub fn load_or_create(path: &Path) -> Result<Self, GatewayError> {
        match std::fs::metadata(path) {
            Ok(_) => Self::load(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match Self::create(path) {
                Ok(identity) => Ok(identity),
                // Another process created it between our check and create_new: use theirs.
                Err(CreateError::Exists) => Self::load(path),
                Err(CreateError::Other(err)) => Err(err),
            },
            Err(e) => Err(key_error(path, format!("cannot read it: {e}"))),
        }
    }

    fn load(path: &Path) -> Result<Self, GatewayError> {
        check_permissions(path)?;
        let text =
            Zeroizing::new(std::fs::read_to_string(path).map_err(|e| key_error(path, format!("cannot read it: {e}")))?);
        let encoded = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .ok_or_else(|| corrupt(path, "it holds no key"))?;
        let bytes =
            Zeroizing::new(URL_SAFE_NO_PAD.decode(encoded).map_err(|_| corrupt(path, "the key is not base64url"))?);
        let seed: Zeroizing<[u8; 32]> =
            Zeroizing::new(bytes.as_slice().try_into().map_err(|_| corrupt(path, "the key is not 32 bytes long"))?);
        Ok(Self::from_seed(&seed))
    }

    fn create(path: &Path) -> Result<Self, CreateError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)
                .map_err(|e| CreateError::Other(key_error(path, format!("cannot create its directory: {e}"))))?;
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut_slice())
            .map_err(|e| CreateError::Other(key_error(path, format!("no system randomness to generate it: {e}"))))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = match options.open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(CreateError::Exists);
            }
            Err(e) => {
                return Err(CreateError::Other(key_error(path, format!("cannot create it: {e}"))));
            }
        };
        let contents = Zeroizing::new(format!("{KEY_FILE_HEADER}{}\n", URL_SAFE_NO_PAD.encode(seed.as_slice())));
        file.write_all(contents.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| CreateError::Other(key_error(path, format!("cannot write it: {e}"))))?;
        let identity = Self::from_seed(&seed);
        tracing::info!(path = %path.display(), device_id = %identity.id, "created a new OpenClaw device identity");
        Ok(identity)
    }

    /// The device id: lowercase hex SHA-256 of the raw public key (64 chars).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The raw 32-byte public key, base64url without padding (43 chars).
    pub fn public_key_b64(&self) -> String {
        self.public_key_b64.clone()
    }

    /// Signs the v3 payload built from `fields` and this device's id; returns the 64-byte
    /// signature in base64url without padding (86 chars).
    pub fn sign_v3(&self, fields: &SignatureFields) -> String {
        let payload = Zeroizing::new(fields.payload_v3(&self.id));
        let signature: Signature = self.signing_key.sign(payload.as_bytes());
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    }
}

/// The device id for a raw public key: lowercase hex SHA-256.
pub fn device_id_for(public_key: &[u8]) -> String {
    hex::encode(Sha256::digest(public_key))
}

/// Checks a v3 signature as the gateway does: public key and signature in base64url without
/// padding, `payload` the exact signed string. Useful to fake gateways in tests.
pub fn verify_signature(public_key_b64: &str, payload: &str, signature_b64: &str) -> bool {
    let Ok(key_bytes) = URL_SAFE_NO_PAD.decode(public_key_b64) else {
        return false;
    };
    let Ok(key_bytes) = <[u8; 32]>::try_from(key_bytes.as_slice()) else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_bytes(&key_bytes) else {
        return false;
    };
    let Ok(sig_bytes) = URL_SAFE_NO_PAD.decode(signature_b64) else {
        return false;
    };
    let Ok(signature) = Signature::from_slice(&sig_bytes) else {
        return false;
    };
    key.verify(payload.as_bytes(), &signature).is_ok()
}

enum CreateError {
    Exists,
    Other(GatewayError),
}

fn key_error(path: &Path, message: String) -> GatewayError {
    GatewayError::DeviceKey { path: PathBuf::from(path), message }
}

fn corrupt(path: &Path, what: &str) -> GatewayError {
    key_error(
        path,
        format!(
            "the file is corrupt ({what}): restore it from a backup, or move it away to create a \
             new device identity (the gateway will then ask to approve the new device)"
        ),
    )
}

#[cfg(unix)]
fn check_permissions(path: &Path) -> Result<(), GatewayError> {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        std::fs::metadata(path).map_err(|e| key_error(path, format!("cannot read it: {e}")))?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(key_error(
            path,
            format!(
                "the file is readable by other users (mode {:o}); the key must stay private: run \
                 `chmod 600 {}`",
                mode & 0o777,
                path.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path) -> Result<(), GatewayError> {
    Ok(())
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference §1.5 test vector, captured from a live 2026.9.6 gateway handshake.
    const VECTOR_ID: &str = "2e964160351a9f145183a6ef6d5fe7cee8793600b728efb5ed3c7b28be583a41";
    const VECTOR_PUBLIC_KEY: &str = "_yqianBVmtIQNM59VDiEeM2VBNJLzkR7gpoagcLpVMI";
    const VECTOR_SIGNATURE: &str =
        "cqp_os-68nZwIMzEreBeWoW6jj-p2BGUiIivJPrsc66vA0YXjCyxC7a5KQqswIMrW28pso2LjgnhjCPEPRraDA";
    const VECTOR_PAYLOAD: &str = "v3|2e964160351a9f145183a6ef6d5fe7cee8793600b728efb5ed3c7b28be583a41|gateway-client|backend|operator|operator.read,operator.write|1795233278136|oc-research-token-0123456789|9f1ca092-5f18-4ac1-8063-046f932b50c1|linux|";

    fn vector_fields() -> SignatureFields {
        SignatureFields {
            client_id: "gateway-client".into(),
            client_mode: "backend".into(),
            role: "operator".into(),
            scopes: vec!["operator.read".into(), "operator.write".into()],
            signed_at_ms: 1_795_233_278_136,
            token: "oc-research-token-0123456789".into(),
            nonce: "9f1ca092-5f18-4ac1-8063-046f932b50c1".into(),
            platform: " Linux ".into(),
            device_family: String::new(),
        }
    }

    #[test]
    fn device_id_is_sha256_of_the_raw_public_key() {
        let raw = URL_SAFE_NO_PAD.decode(VECTOR_PUBLIC_KEY).unwrap();
        assert_eq!(raw.len(), 32);
        assert_eq!(device_id_for(&raw), VECTOR_ID);
    }

    #[test]
    fn captured_signature_verifies_over_the_v3_payload() {
        assert!(verify_signature(VECTOR_PUBLIC_KEY, VECTOR_PAYLOAD, VECTOR_SIGNATURE));
        assert!(!verify_signature(VECTOR_PUBLIC_KEY, &VECTOR_PAYLOAD.replace("linux", "macos"), VECTOR_SIGNATURE));
    }

    #[test]
    fn payload_builder_matches_the_vector() {
        assert_eq!(vector_fields().payload_v3(VECTOR_ID), VECTOR_PAYLOAD);
    }

    #[test]
    fn own_signatures_verify_and_are_deterministic() {
        let identity = DeviceIdentity::from_seed(&[7u8; 32]);
        let fields = vector_fields();
        let sig = identity.sign_v3(&fields);
        assert_eq!(sig.len(), 86);
        assert_eq!(identity.public_key_b64().len(), 43);
        assert_eq!(identity.id().len(), 64);
        assert!(verify_signature(&identity.public_key_b64(), &fields.payload_v3(identity.id()), &sig));
        assert_eq!(sig, identity.sign_v3(&fields));
    }

    #[test]
    fn debug_output_hides_secrets() {
        let identity = DeviceIdentity::from_seed(&[7u8; 32]);
        let text = format!("{identity:?} {:?}", vector_fields());
        assert!(!text.contains("oc-research-token"));
        assert!(text.contains(identity.id()));
    }
}
