//! JWT test kit: signing keys (ES256 and EdDSA generated per test, one fixed RS256 test key),
//! their JWKS, signed tokens with chosen claims, and a JWKS server on loopback whose key set
//! a test can rotate.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A fixed 2048-bit RSA test key (RSA cannot be generated with ring); PKCS#8.
const RSA_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDCFZSlXpmfYK3p
vFTghqZsajmr9AJFgmUlIr4mCNRwsoGwJih/eHhKlWSbXipm75+n9it4dgJiTGGf
sZQ0FsfN+O9YubSzElMWRX0y1epvO9iELlXgX3k4wKoG6dXKnP6ciUcCBtk1QwsE
BnmJAiWlhmknVtMs4rDJIvoqcDy/usjHbPQARvXfDNIzs8TwE20xIm/63AwmDDP/
32I945hyQxmVjrWTMK+mPtnpM+OvvnyXu+dF8VYUybdzmpvg34NWWeT84/awWGn2
YMGyEFecDVCETiFt8biX8/8ytZSd7KQ6TWPJvc4qY0oeIeXwZ1ETYxc42VqzApby
nlQ/PzrVAgMBAAECggEAD3XRn/SvrxLv95kBd9syAZvamTh4P9o5vWINnJECfzGx
A/ueKT1K88H/wCKZpRZ8dNA2uUNJQFROSH7IS/fulZk5U6uDWephRPpnFTgWEyNE
xY69V4CzctJiGOfimF+2JnkG94HdJpF/HKR5ZPEPV6aj1LblXoN2SqdnHx9Or4UJ
epQ5G96iif8YobbtFI+TLCR9MjcYdXrAdfp+VWfGl7TAbJuGVzwTDqBH4LNYFStP
RkEdC6IF8BEMie6aa0jVje3U0jAdnR/FD3GHsAOWTIYMloodYk07hVUwCT7Sasjc
FxCKJXG3eRNRTiKgDdVHN7jvOVf9ks6vCRJIO/bMZwKBgQDhnpFLn93OoSwrBbTm
JpjRwr6uxKKikGa07kkK/W1pkKPSCJ/Awrw8DR1szZo9iojZmcCHIttFPtw4yJle
5JFz1eIkdG63bENoLAy94Fxl6wnsSgyUFLqjCP2H575gygySNgD9Qsf8k62j8tEy
1ocb1T8lqPFo0L8yV9FzPwCwrwKBgQDcN/OguOMKU+OD9J5yu9B8HDHqhA6R1zL/
MTf6O5O6cVvMLeB34O+FcB5ivMA6Qybz5pi41W6ZcxfoMo/Yr1pNpNWrygx2vXSY
sVCNJXhMmfkc2WWsBohGP9rp0rVQCyB8udptWByWPTO0qX3zr3kH28nQvhB0L65H
HuRBOZFFuwKBgQDPIs0yKOtysPXj6bFTO0xCCBEYUt8dcIVaxwm4VUMGEAzW36QL
TL2URFYndfuNVIqffFENwCqfQD7ewwxL2nzPZCXiYiLjszmPgiGQkVNDHq5ViQZT
TVSsKazaASD/q4AvG/V8jrscYFiilGML0XjpTLZU1O4N1Ng0V/urWsQ/cQKBgHUq
29f2pu3WxmVt4GPhI8L06WYCTxIvcnWuhT8BNc9sAtB21EhUCHxxs+kKzifxlKcO
WNF21XqVbvHe/QPoAF7xRbI6NTl0AbZAGUCP4Bq5jX5Y+Kx3aUgfL2Va85cb5HQY
Gmw1Bji1ZW5JA7eE9BtHSHBkv7JhsBMtD3rYmz+DAoGAcHbHBy+MYSOrDue75iFt
mnMtI39zZiBQHe23/r/5q/RmMtjpVvnWtPlEPBb2M7enjvr+F+s1NWFeM2ffGT7Y
uZf3fmzMwQkcdpT8oGZXNGsVJyoy484DLo7rDSvXBXAUWEb3eHMpyXolYUaG4KT9
lphuCIIh09cWEui2HKmDRJA=
-----END PRIVATE KEY-----";
/// Its modulus, base64url (exponent 65537).
const RSA_N: &str = "whWUpV6Zn2Ct6bxU4IambGo5q_QCRYJlJSK-JgjUcLKBsCYof3h4SpVkm14qZu-fp_YreHYCYkxhn7GUNBbHzfjvWLm0sxJTFkV9MtXqbzvYhC5V4F95OMCqBunVypz-nIlHAgbZNUMLBAZ5iQIlpYZpJ1bTLOKwySL6KnA8v7rIx2z0AEb13wzSM7PE8BNtMSJv-twMJgwz_99iPeOYckMZlY61kzCvpj7Z6TPjr758l7vnRfFWFMm3c5qb4N-DVlnk_OP2sFhp9mDBshBXnA1QhE4hbfG4l_P_MrWUneykOk1jyb3OKmNKHiHl8GdRE2MXONlaswKW8p5UPz861Q";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// One signing key with its public JWK.
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    encoding: EncodingKey,
    pub jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({} {:?})", self.kid, self.alg)
    }
}

impl SigningKey {
    /// A fresh P-256 key (ES256).
    pub fn es256(kid: &str) -> SigningKey {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
        let raw = kp.public_key_raw();
        let (x, y) = raw[1..].split_at(32);
        SigningKey {
            kid: kid.to_string(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).expect("EC PEM"),
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
                        "x": b64(x), "y": b64(y)}),
        }
    }

    /// A fresh Ed25519 key (EdDSA).
    pub fn ed25519(kid: &str) -> SigningKey {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("Ed25519 key");
        SigningKey {
            kid: kid.to_string(),
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_pem(kp.serialize_pem().as_bytes()).expect("Ed PEM"),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA",
                        "x": b64(kp.public_key_raw())}),
        }
    }

    /// The fixed RSA test key (RS256).
    pub fn rs256(kid: &str) -> SigningKey {
        SigningKey {
            kid: kid.to_string(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(RSA_PEM.as_bytes()).expect("RSA PEM"),
            jwk: json!({"kty": "RSA", "kid": kid, "alg": "RS256", "n": RSA_N, "e": "AQAB"}),
        }
    }

    /// A token over `claims`, signed with this key (header `kid` set).
    pub fn sign(&self, claims: &Value) -> String {
        let mut h = Header::new(self.alg);
        h.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&h, claims, &self.encoding).expect("sign")
    }
}

/// A JWKS document for `keys`.
pub fn jwks(keys: &[&SigningKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

/// Seconds since the epoch now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Standard claims for `iss` / `sub` / `aud`, valid for an hour, plus `extra`.
pub fn claims(iss: &str, sub: &str, aud: &str, extra: Value) -> Value {
    let mut c = json!({"iss": iss, "sub": sub, "aud": aud, "iat": now(), "exp": now() + 3600});
    if let (Some(m), Value::Object(e)) = (c.as_object_mut(), extra) {
        m.extend(e);
    }
    c
}

/// A JWKS server on loopback: `GET .../.well-known/openid-configuration` returns an OpenID
/// configuration pointing at `/jwks.json`; any other path returns the current set.
#[derive(Debug, Clone)]
pub struct JwksServer {
    pub addr: SocketAddr,
    body: Arc<Mutex<String>>,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    pub async fn start(initial: String) -> JwksServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let body = Arc::new(Mutex::new(initial));
        let hits = Arc::new(AtomicUsize::new(0));
        let (b, h) = (body.clone(), hits.clone());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let (b, h) = (b.clone(), h.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let head = String::from_utf8_lossy(&buf);
                    let text = if head
                        .lines()
                        .next()
                        .is_some_and(|l| l.contains("/.well-known/openid-configuration"))
                    {
                        json!({"issuer": format!("http://{addr}"),
                               "jwks_uri": format!("http://{addr}/jwks.json")})
                        .to_string()
                    } else {
                        b.lock().map(|t| t.clone()).unwrap_or_default()
                    };
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                        text.len()
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        JwksServer { addr, body, hits }
    }

    /// `http://ADDR/jwks.json`.
    pub fn uri(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    /// Serve `text` from now on (key rotation).
    pub fn set(&self, text: String) {
        if let Ok(mut b) = self.body.lock() {
            *b = text;
        }
    }

    /// Requests served so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}
