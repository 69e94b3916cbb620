//! `/api/v1/auth/*`: register, log in, refresh, log out, who am I.

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use onair_store::Role;
use tracing::info;

use super::extract::{ClientIp, Json};
use super::model::{Credentials, TokenResponse, User};
use super::problem::{ApiError, ProblemKind};
use super::session::Caller;
use super::validate::{Checks, PASSWORD_LEN, USERNAME_LEN};
use super::{ApiState, created, no_store};
use crate::platform::{LoginOutcome, PlatformError};

/// Creates a viewer account and logs it in. Only when the server allows registration
/// (`auth.registration = true`); an admin makes the account a streamer.
#[utoipa::path(
    post,
    path = "/auth/register",
    tag = "auth",
    request_body = Credentials,
    responses(
        (status = 201, description = "Created and logged in", body = TokenResponse),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, description = "Registration is turned off", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 409, response = super::problem::Conflict),
        (status = 429, response = super::problem::TooManyRequests),
    )
)]
pub async fn register(
    State(state): State<ApiState>,
    ip: ClientIp,
    Json(body): Json<Credentials>,
) -> Result<Response, ApiError> {
    if !state.platform().auth_config().registration {
        return Err(ApiError::new(
            ProblemKind::RegistrationClosed,
            "this server does not allow self-registration; ask an admin for an account",
        ));
    }
    Checks::new()
        .username("username", &body.username)
        .password("password", &body.password)
        .finish()?;
    // Registration hashes a password too: it shares the login budget of the address, so it
    // cannot be used to burn CPU or to probe names faster than logging in.
    state
        .limiter()
        .admit(ip, Instant::now())
        .map_err(ApiError::rate_limited)?;
    let user = state
        .platform()
        .create_user(&body.username, &body.password, Role::Viewer)
        .await?;
    info!(user = user.username, "account registered");
    let token = token_response(&state, user).await?;
    Ok(no_store(created("/api/v1/auth/me".to_owned(), token)))
}

/// Logs in: an access token for `Authorization: Bearer`. Limited per client address
/// (`auth.login_attempts_per_minute`, then 429); past as many failures for one account, each
/// further wrong password is answered after a growing delay, and a right one at once.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    request_body = Credentials,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 400, response = super::problem::BadRequest),
        (status = 401, description = "Wrong username or password", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The account is banned", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 429, response = super::problem::TooManyRequests),
    )
)]
pub async fn login(
    State(state): State<ApiState>,
    ip: ClientIp,
    Json(body): Json<Credentials>,
) -> Result<Response, ApiError> {
    // Only the bounds, not the full rules: accounts made before a rule changed must still
    // log in. The bounds keep the limiter's keys and the hashing work small.
    Checks::new()
        .check(
            (1..=*USERNAME_LEN.end()).contains(&body.username.len()),
            "username",
            "must be 1 to 32 characters",
        )
        .check(
            (1..=*PASSWORD_LEN.end()).contains(&body.password.chars().count()),
            "password",
            "must be 1 to 128 characters",
        )
        .finish()?;
    let limiter = state.limiter();
    limiter
        .admit(ip, Instant::now())
        .map_err(ApiError::rate_limited)?;
    let outcome = match state.platform().login(&body.username, &body.password).await {
        Err(e @ PlatformError::Busy { .. }) => {
            // The password was never checked: the attempt is the server's loss, not the
            // caller's.
            limiter.give_back(ip);
            return Err(e.into());
        }
        other => other?,
    };
    match outcome {
        LoginOutcome::Ok(user) => {
            info!(user = user.username, "logged in");
            Ok(no_store(Json(token_response(&state, user).await?)))
        }
        LoginOutcome::BadCredentials => {
            let delay = limiter.record_failure(&body.username, Instant::now());
            // Held, not refused: the guesser waits for its answer, and the owner's right
            // password, whenever it comes, is checked and answered at once.
            tokio::time::sleep(delay).await;
            Err(ApiError::new(
                ProblemKind::BadCredentials,
                "no account has this username and password",
            ))
        }
        LoginOutcome::Banned => Err(ApiError::new(
            ProblemKind::AccountBanned,
            "this account is banned",
        )),
    }
}

/// Trades a valid access token for a fresh one; the old one stops working.
#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, description = "A new token", body = TokenResponse))
)]
pub async fn refresh(
    State(state): State<ApiState>,
    Caller(session): Caller,
) -> Result<Response, ApiError> {
    let token = token_response(&state, session.user).await?;
    state.platform().logout(session.claims.jti.as_str()).await?;
    Ok(no_store(Json(token)))
}

/// Ends the session of this access token.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 204, description = "Logged out"))
)]
pub async fn logout(
    State(state): State<ApiState>,
    Caller(session): Caller,
) -> Result<StatusCode, ApiError> {
    state.platform().logout(session.claims.jti.as_str()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The account of this access token.
#[utoipa::path(
    get,
    path = "/auth/me",
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller's account", body = User))
)]
pub async fn me(caller: Caller) -> Json<User> {
    Json(caller.0.user.into())
}

async fn token_response(
    state: &ApiState,
    user: onair_store::User,
) -> Result<TokenResponse, ApiError> {
    let (token, expires_at) = state.platform().issue_access_token(&user).await?;
    let expires_in = (expires_at - chrono::Utc::now()).num_seconds().max(0);
    Ok(TokenResponse {
        access_token: token.expose().to_owned(),
        token_type: "Bearer".into(),
        expires_at,
        expires_in: expires_in.unsigned_abs(),
        user: user.into(),
    })
}
