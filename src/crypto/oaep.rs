//! The seeded RSA-OAEP(SHA-256) wrap of a new header's data key, fast: EME-OAEP encoding
//! (RFC 8017 §7.1.1, empty label, MGF1-SHA-256) with the OAEP seed drawn from a generator
//! seeded by the caller, then `m^e mod n` in Montgomery form with `crypto-bigint`, the
//! modulus' parameters computed once per certificate.
//!
//! Why not the `rsa` crate's `encrypt`: it gives the same bytes (a test compares them), but
//! its modular exponentiation (`num-bigint-dig`) took about 0.3 ms per wrap, and every
//! re-encrypted file needs two (the header written, then checked by wrapping again): more
//! than the file's one private-key operation (`encryption-format.md`).

use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, Odd};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use rsa::traits::PublicKeyParts;
use rsa::RsaPublicKey;
use sha2::{Digest, Sha256};

use super::CryptoError;

const H_LEN: usize = 32;

/// A public key ready for repeated seeded wraps.
pub(crate) struct SeededWrap {
    params: BoxedMontyParams,
    e: BoxedUint,
    /// Modulus length in bytes.
    k: usize,
    precision: u32,
}

impl SeededWrap {
    /// None for a key `crypto-bigint` cannot take (an even modulus is no RSA key).
    pub(crate) fn new(public: &RsaPublicKey) -> Option<SeededWrap> {
        let k = public.size();
        let precision = u32::try_from(k.div_ceil(8) * 64).ok()?;
        let n = BoxedUint::from_be_slice(&public.n().to_bytes_be(), precision).ok()?;
        let n = Option::<Odd<BoxedUint>>::from(Odd::new(n))?;
        let e = BoxedUint::from_be_slice(&public.e().to_bytes_be(), precision).ok()?;
        Some(SeededWrap {
            params: BoxedMontyParams::new(n),
            e,
            k,
            precision,
        })
    }

    /// RSA-OAEP(SHA-256) of `key`, the OAEP seed the first 32 bytes `StdRng::from_seed(seed)`
    /// yields (as the `rsa` crate draws it), so the result is a function of `key` and `seed`.
    pub(crate) fn wrap(&self, key: &[u8], seed: [u8; 32]) -> Result<Vec<u8>, CryptoError> {
        let k = self.k;
        if key.len() + 2 * H_LEN + 2 > k {
            return Err(CryptoError::Rsa("message too long for the key".into()));
        }
        // EM = 0x00 || maskedSeed || maskedDB, DB = lHash || PS || 0x01 || M.
        let mut em = vec![0u8; k];
        let (oaep_seed, db) = em[1..].split_at_mut(H_LEN);
        StdRng::from_seed(seed).fill_bytes(oaep_seed);
        let db_len = db.len();
        db[..H_LEN].copy_from_slice(&Sha256::digest(b""));
        db[db_len - key.len() - 1] = 1;
        db[db_len - key.len()..].copy_from_slice(key);
        mgf1_xor(db, oaep_seed);
        mgf1_xor(oaep_seed, db);

        let m = BoxedUint::from_be_slice(&em, self.precision)
            .map_err(|e| CryptoError::Rsa(format!("OAEP block: {e:?}")))?;
        let c = BoxedMontyForm::new(m, &self.params)
            .pow_bounded_exp(&self.e, self.e.bit_width_vartime())
            .retrieve()
            .to_be_bytes();
        Ok(c[c.len() - k..].to_vec())
    }
}

/// `out ^= MGF1-SHA-256(seed, out.len())`.
fn mgf1_xor(out: &mut [u8], seed: &[u8]) {
    for (counter, block) in out.chunks_mut(H_LEN).enumerate() {
        let mask = Sha256::new()
            .chain_update(seed)
            .chain_update((counter as u32).to_be_bytes())
            .finalize();
        block.iter_mut().zip(mask).for_each(|(b, m)| *b ^= m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::{Oaep, RsaPrivateKey};

    /// The same bytes as the `rsa` crate's OAEP encryption from the same seeded generator,
    /// for keys of two sizes and many keys and seeds: the format and the verification by
    /// wrapping again are unchanged whichever computes it. (Keys generated here, not by the
    /// `openssl` tool: this runs under wine too.)
    #[test]
    fn same_bytes_as_the_rsa_crate() {
        let mut rng = StdRng::from_seed([42; 32]);
        for bits in [2048, 3072] {
            let public = RsaPrivateKey::new(&mut rng, bits).unwrap().to_public_key();
            let fast = SeededWrap::new(&public).unwrap();
            for i in 0..40u8 {
                let key: Vec<u8> = (0..32)
                    .map(|j| i.wrapping_mul(31).wrapping_add(j))
                    .collect();
                let seed = [i.wrapping_mul(7); 32];
                let slow = public
                    .encrypt(&mut StdRng::from_seed(seed), Oaep::new::<Sha256>(), &key)
                    .unwrap();
                assert_eq!(fast.wrap(&key, seed).unwrap(), slow, "{bits} bits, key {i}");
            }
            assert!(
                fast.wrap(&[0u8; 400], [0; 32]).is_err(),
                "too long for OAEP"
            );
        }
    }
}
