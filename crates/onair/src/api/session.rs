//! Who is calling: extractors that verify the bearer token on every request, and require a
//! role.
//!
//! The token is checked against the store each time ([`Platform::authenticate`]): a logout,
//! a ban or a role change takes effect on the caller's next request, not when the token
//! expires. The role that counts is the account's role now, not the one in the token.
//!
//! [`Platform::authenticate`]: crate::platform::Platform::authenticate

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use onair_store::{Role, User};

use super::ApiState;
use super::problem::ApiError;
use crate::platform::Session;

/// Any signed-in caller (viewer, streamer or admin).
#[derive(Debug, Clone)]
pub struct Caller(pub Session);

/// A caller who may own channels: a streamer or an admin.
#[derive(Debug, Clone)]
pub struct Streamer(pub Session);

/// An admin.
#[derive(Debug, Clone)]
pub struct Admin(pub Session);

impl Caller {
    /// The account.
    pub fn user(&self) -> &User {
        &self.0.user
    }
}

impl Streamer {
    /// The account.
    pub fn user(&self) -> &User {
        &self.0.user
    }
}

impl Admin {
    /// The account.
    pub fn user(&self) -> &User {
        &self.0.user
    }
}

/// The token of `Authorization: Bearer <token>` ([`crate::platform::bearer`]).
fn bearer(parts: &Parts) -> Option<&str> {
    crate::platform::bearer(&parts.headers)
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(ApiError::missing_token)?;
        // The verifier caps token length itself; the text never reaches a log.
        match state.platform().authenticate(token).await? {
            Some(session) => Ok(Caller(session)),
            None => Err(ApiError::invalid_token()),
        }
    }
}

impl FromRequestParts<ApiState> for Streamer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let Caller(session) = Caller::from_request_parts(parts, state).await?;
        match session.user.role {
            Role::Streamer | Role::Admin => Ok(Streamer(session)),
            Role::Viewer => Err(ApiError::forbidden(
                "only streamers and admins have channels; ask an admin to make you a streamer",
            )),
        }
    }
}

impl FromRequestParts<ApiState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let Caller(session) = Caller::from_request_parts(parts, state).await?;
        match session.user.role {
            Role::Admin => Ok(Admin(session)),
            Role::Streamer | Role::Viewer => Err(ApiError::forbidden("admins only")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    fn parts(authorization: Option<&str>) -> Parts {
        let mut builder = axum::http::Request::builder();
        if let Some(value) = authorization {
            builder = builder.header(header::AUTHORIZATION, value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer(&parts(Some("Bearer abc"))), Some("abc"));
        assert_eq!(bearer(&parts(Some("bearer  abc "))), Some("abc"));
        assert_eq!(bearer(&parts(Some("Basic abc"))), None);
        assert_eq!(bearer(&parts(Some("Bearer "))), None);
        assert_eq!(bearer(&parts(Some("Bearer"))), None);
        assert_eq!(bearer(&parts(None)), None);
    }
}
