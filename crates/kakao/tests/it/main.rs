//! Integration tests of the Kakao crate (one test binary).

mod fake_kakao;
mod talk;
