//! Gifts and wallets: the [`Gift`] catalogue, coin balances, admin credits and
//! [`Store::send_gift`], the one transaction that moves coins from a viewer to a streamer.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{ResultExt, StoreError};
use crate::store::{Store, now};

macro_rules! event_columns {
    () => {
        "id, sender_id, channel_id, recipient_id, gift_id, count, value, idempotency_key, live_session_id, created_at"
    };
}

/// A gift viewers can send, priced in coins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Gift {
    /// Its id.
    pub id: i64,
    /// Its name, unique.
    pub name: String,
    /// Coins per gift.
    pub price: i64,
    /// Whether it can be sent now.
    pub active: bool,
}

/// A gift that was sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct GiftEvent {
    /// Its id.
    pub id: i64,
    /// Who sent it (and paid).
    pub sender_id: i64,
    /// The channel it was sent in.
    pub channel_id: i64,
    /// Who was credited: the channel's owner.
    pub recipient_id: i64,
    /// Which gift.
    pub gift_id: i64,
    /// How many.
    pub count: i64,
    /// Coins moved: price × count.
    pub value: i64,
    /// The sender's key for this send; a retry with the same key is not charged again.
    pub idempotency_key: String,
    /// The live session it was sent during.
    pub live_session_id: Option<i64>,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
}

/// A send for [`Store::send_gift`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendGift {
    /// Who sends and pays.
    pub sender_id: i64,
    /// The channel; its owner is credited.
    pub channel_id: i64,
    /// Which gift; must be active.
    pub gift_id: i64,
    /// How many, at least 1.
    pub count: u32,
    /// The client's key for this send, unique per sender.
    pub idempotency_key: String,
    /// The live session, if live.
    pub live_session_id: Option<i64>,
}

/// What [`Store::send_gift`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GiftOutcome {
    /// Charged and recorded; `balance` is the sender's balance after it.
    Sent {
        /// The new event.
        event: GiftEvent,
        /// The sender's balance afterwards.
        balance: i64,
    },
    /// The key was used before: this is the original event and nothing was charged.
    Replayed {
        /// The original event.
        event: GiftEvent,
    },
    /// Refused: the wallet holds less than the gift costs. Nothing changed.
    InsufficientBalance {
        /// The sender's balance.
        balance: i64,
        /// What the gift costs.
        needed: i64,
    },
}

/// Gifts and wallets.
impl Store {
    /// The gifts that can be sent, cheapest first.
    pub async fn list_gifts(&self) -> Result<Vec<Gift>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, Gift>(
                "SELECT id, name, price, active FROM gifts WHERE active ORDER BY price, id",
            )
            .fetch_all(pool)
            .await
        })?)
    }

    /// The gift with this id, active or not.
    pub async fn gift_by_id(&self, id: i64) -> Result<Option<Gift>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, Gift>("SELECT id, name, price, active FROM gifts WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// A user's coins; 0 when they never had any.
    pub async fn wallet_balance(&self, user_id: i64) -> Result<i64, StoreError> {
        let balance: Option<i64> = with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT balance FROM wallets WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(balance.unwrap_or(0))
    }

    /// Adds `amount` coins (at least 1) to a user's wallet, recording who did it and why in
    /// `wallet_credits`, in one transaction. Returns the new balance;
    /// [`StoreError::NotFound`] when the user does not exist.
    pub async fn credit_wallet(
        &self,
        user_id: i64,
        amount: i64,
        admin_id: Option<i64>,
        reason: &str,
    ) -> Result<i64, StoreError> {
        let at = now();
        with_pool!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "INSERT INTO wallet_credits (user_id, amount, admin_id, reason, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(user_id)
                .bind(amount)
                .bind(admin_id)
                .bind(reason)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                let balance: i64 = sqlx::query_scalar(
                    "INSERT INTO wallets (user_id, balance, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (user_id) DO UPDATE SET balance = wallets.balance + excluded.balance, \
                     updated_at = excluded.updated_at RETURNING balance",
                )
                .bind(user_id)
                .bind(amount)
                .bind(at)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(balance)
            }
            .await
        })
        .on_missing_reference(|| format!("user {user_id}"))
    }

    /// Sends a gift: in one transaction, records the event, debits the sender (only if the
    /// balance covers it) and credits the channel's owner.
    ///
    /// - The event is inserted first: its unique `(sender_id, idempotency_key)` makes a
    ///   retried send — also one racing the original — find the original and charge nothing
    ///   ([`GiftOutcome::Replayed`]). Writing first also takes SQLite's write lock before
    ///   anything is read, so concurrent sends queue on the busy timeout instead of failing.
    /// - The debit is one conditional `UPDATE … WHERE balance >= value`; the database
    ///   serialises concurrent debits of one wallet, so the balance never goes negative.
    ///
    /// [`StoreError::NotFound`] when the gift (or an inactive one), channel or sender does
    /// not exist.
    pub async fn send_gift(&self, send: SendGift) -> Result<GiftOutcome, StoreError> {
        let gift = self
            .gift_by_id(send.gift_id)
            .await?
            .filter(|g| g.active)
            .ok_or_else(|| StoreError::NotFound {
                what: format!("gift {}", send.gift_id),
            })?;
        let recipient_id: i64 = with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT owner_id FROM channels WHERE id = $1")
                .bind(send.channel_id)
                .fetch_optional(pool)
                .await
        })?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("channel {}", send.channel_id),
        })?;
        let value = gift.price.saturating_mul(i64::from(send.count.max(1)));
        // A key whose first send was refused for lack of coins left no row, so the loop runs
        // again only when the racing original rolled back between our conflict and our read.
        for _ in 0..3 {
            match self.try_send_gift(&send, recipient_id, value).await? {
                Some(outcome) => return Ok(outcome),
                None => {
                    if let Some(event) = self
                        .gift_event_by_key(send.sender_id, &send.idempotency_key)
                        .await?
                    {
                        return Ok(GiftOutcome::Replayed { event });
                    }
                }
            }
        }
        Err(StoreError::Conflict {
            what: format!("gift send {:?}", send.idempotency_key),
            constraint: "gift_events_idempotency_key".to_owned(),
        })
    }

    /// `None` when the key is taken.
    async fn try_send_gift(
        &self,
        send: &SendGift,
        recipient_id: i64,
        value: i64,
    ) -> Result<Option<GiftOutcome>, StoreError> {
        const INSERT: &str = concat!(
            "INSERT INTO gift_events (sender_id, channel_id, recipient_id, gift_id, count, value, idempotency_key, live_session_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ",
            event_columns!()
        );
        let at = now();
        let lock_wallets_first = self.backend() == crate::Backend::Postgres;
        with_pool!(self, |pool| {
            async {
                if lock_wallets_first {
                    // The ordered lock below only orders the rows that exist when it runs: a
                    // recipient's wallet created later in the transaction would be locked out
                    // of order. Creating both first, outside the transaction, fixes the set.
                    sqlx::query(
                        "INSERT INTO wallets (user_id, balance, updated_at) \
                         VALUES ($1, 0, $3), ($2, 0, $3) ON CONFLICT (user_id) DO NOTHING",
                    )
                    .bind(send.sender_id)
                    .bind(recipient_id)
                    .bind(at)
                    .execute(pool)
                    .await?;
                }
                let mut tx = pool.begin().await?;
                let inserted = sqlx::query_as::<_, GiftEvent>(INSERT)
                    .bind(send.sender_id)
                    .bind(send.channel_id)
                    .bind(recipient_id)
                    .bind(send.gift_id)
                    .bind(i64::from(send.count.max(1)))
                    .bind(value)
                    .bind(&send.idempotency_key)
                    .bind(send.live_session_id)
                    .bind(at)
                    .fetch_one(&mut *tx)
                    .await
                    .on_constraint(String::new)
                    .on_missing_reference(|| format!("user {}", send.sender_id));
                let event = match inserted {
                    Ok(event) => event,
                    Err(StoreError::Conflict { .. }) => return Ok(None),
                    Err(other) => return Err(other),
                };
                if lock_wallets_first {
                    // Two users gifting each other would otherwise lock the same two rows
                    // from opposite ends (debit, then credit) and PostgreSQL would abort one
                    // as a deadlock. Locking both in id order first gives every send the
                    // same order. SQLite has one writer at a time: the INSERT above already
                    // holds it.
                    sqlx::query(
                        "SELECT user_id FROM wallets WHERE user_id IN ($1, $2) \
                         ORDER BY user_id FOR UPDATE",
                    )
                    .bind(send.sender_id)
                    .bind(recipient_id)
                    .fetch_all(&mut *tx)
                    .await?;
                }
                let debited: Option<i64> = sqlx::query_scalar(
                    "UPDATE wallets SET balance = balance - $2, updated_at = $3 \
                     WHERE user_id = $1 AND balance >= $2 RETURNING balance",
                )
                .bind(send.sender_id)
                .bind(value)
                .bind(at)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(mut balance) = debited else {
                    tx.rollback().await?;
                    let balance = self.wallet_balance(send.sender_id).await?;
                    return Ok(Some(GiftOutcome::InsufficientBalance {
                        balance,
                        needed: value,
                    }));
                };
                let credited: i64 = sqlx::query_scalar(
                    "INSERT INTO wallets (user_id, balance, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (user_id) DO UPDATE SET balance = wallets.balance + excluded.balance, \
                     updated_at = excluded.updated_at RETURNING balance",
                )
                .bind(recipient_id)
                .bind(value)
                .bind(at)
                .fetch_one(&mut *tx)
                .await?;
                if recipient_id == send.sender_id {
                    balance = credited;
                }
                tx.commit().await?;
                Ok(Some(GiftOutcome::Sent { event, balance }))
            }
            .await
        })
    }

    /// The event a sender recorded with this key.
    pub async fn gift_event_by_key(
        &self,
        sender_id: i64,
        idempotency_key: &str,
    ) -> Result<Option<GiftEvent>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            event_columns!(),
            " FROM gift_events WHERE sender_id = $1 AND idempotency_key = $2"
        );
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, GiftEvent>(SQL)
                .bind(sender_id)
                .bind(idempotency_key)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// How many gift events a sender recorded.
    pub async fn count_gift_events_by(&self, sender_id: i64) -> Result<u64, StoreError> {
        let count: i64 = with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM gift_events WHERE sender_id = $1")
                .bind(sender_id)
                .fetch_one(pool)
                .await
        })?;
        Ok(count.unsigned_abs())
    }
}
