//! Market endpoints (SPEC §5, §11): prices, the market state with its history and
//! public bid book, and an agent's own bids: place (also on behalf of another
//! agent), list, raise, withdraw.

use super::auth::Caller;
use super::error::ApiResult;
use super::extract::{amount, limit, ApiJson, ApiPath, ApiQuery};
use super::idempotency::{self, IdempotencyHeader};
use super::schema::{CreditAmount, Errors, PositiveAmount, ResourceSchema};
use super::state::ApiState;
use super::views::{BidView, BundleView};
use crate::store::{NewBid, Newest};
use agora_core::{AgentId, BidId, Credits, Resource};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(prices))
        .routes(routes!(state))
        .routes(routes!(place_bid))
        .routes(routes!(list_bids))
        .routes(routes!(raise_bid, withdraw_bid))
}

/// The price of each resource.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PricesView {
    /// The last allocation cycle that began.
    pub cycle: i64,
    /// Credits per unit: per CPU second, per MB, per token, per whole attention share.
    #[schema(value_type = std::collections::BTreeMap<String, CreditAmount>)]
    pub prices: std::collections::BTreeMap<String, Credits>,
}

/// Current price per resource.
#[utoipa::path(get, path = "/market/prices", tag = "market",
    security(("execution_token" = [])),
    responses((status = 200, body = PricesView), Errors))]
async fn prices(_: Caller, State(s): State<ApiState>) -> ApiResult<Json<PricesView>> {
    let prices = s.store.prices().await?;
    let cycle = s.store.current_cycle().await?;
    Ok(Json(PricesView {
        cycle: cycle.0,
        prices: Resource::ALL
            .iter()
            .map(|r| {
                (
                    r.as_str().to_string(),
                    Credits::from_micros(prices.get(*r).0),
                )
            })
            .collect(),
    }))
}

/// One market.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MarketView {
    #[schema(value_type = ResourceSchema)]
    pub resource: String,
    /// Supply per cycle (memory: the pool) in displayed units.
    pub supply: f64,
    /// Memory held by running executions; 0 for per-cycle resources.
    pub in_use: f64,
    /// allocated / supply in the last cycle.
    pub utilisation: f64,
    #[schema(value_type = CreditAmount)]
    pub price: Credits,
    #[schema(value_type = CreditAmount)]
    pub min_price: Credits,
    #[schema(value_type = CreditAmount)]
    pub max_price: Credits,
    /// Recent cycles, newest first.
    pub history: Vec<HistoryView>,
}

/// A market after one cycle.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HistoryView {
    pub cycle: i64,
    pub allocated: f64,
    pub utilisation: f64,
    #[schema(value_type = CreditAmount)]
    pub price: Credits,
}

/// Supply, utilisation, prices, recent history and the public bid book.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MarketStateView {
    pub cycle: i64,
    /// True while the operator has paused allocation.
    pub paused: bool,
    pub markets: Vec<MarketView>,
    /// Pending bids of every agent, in clearing order (highest first).
    pub bid_book: Vec<BidView>,
}

/// Sizes of the market state.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StateQuery {
    /// Cycles of history per market (1..=1000, default 50).
    #[param(minimum = 1, maximum = 1000)]
    history: Option<i64>,
    /// Bids of the book (1..=1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    book: Option<i64>,
}

/// Market state: supply, utilisation, price, history and the public bid book.
#[utoipa::path(get, path = "/market/state", tag = "market",
    security(("execution_token" = [])), params(StateQuery),
    responses((status = 200, body = MarketStateView), Errors))]
async fn state(
    _: Caller,
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<StateQuery>,
) -> ApiResult<Json<MarketStateView>> {
    let history = limit(q.history, 50, 1000)?;
    let book = limit(q.book, 100, 1000)?;
    let cycle = s.store.current_cycle().await?.0;
    let rows = s
        .store
        .market_history((cycle - history).max(0), history * 4)
        .await?;
    let mut markets = Vec::new();
    for m in s.store.markets().await? {
        let r = Resource::parse(&m.resource).unwrap_or(Resource::CpuSeconds);
        markets.push(MarketView {
            supply: r.to_display(m.capacity.max(0) as u64),
            in_use: r.to_display(m.in_use.max(0) as u64),
            utilisation: m.utilisation,
            price: Credits::from_micros(m.price),
            min_price: Credits::from_micros(m.min_price),
            max_price: Credits::from_micros(m.max_price),
            history: rows
                .iter()
                .rev()
                .filter(|h| h.resource == m.resource)
                .map(|h| HistoryView {
                    cycle: h.cycle,
                    allocated: r.to_display(h.allocated.max(0) as u64),
                    utilisation: h.utilisation,
                    price: Credits::from_micros(h.price),
                })
                .collect(),
            resource: m.resource,
        });
    }
    Ok(Json(MarketStateView {
        cycle,
        paused: s.store.paused().await?,
        markets,
        bid_book: s
            .store
            .bid_book(book)
            .await?
            .iter()
            .map(BidView::from)
            .collect(),
    }))
}

/// A bid to place.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceBid {
    pub bundle: BundleView,
    /// At least the bundle's reserve price at current prices; held until decided.
    #[schema(value_type = PositiveAmount, required = true)]
    #[serde(default)]
    pub amount: serde_json::Value,
    /// The agent woken if the bid wins; the caller when absent. The caller always
    /// pays.
    #[serde(default)]
    pub beneficiary: Option<i64>,
}

/// Place a bid for a bundle, for the caller or on behalf of another agent.
#[utoipa::path(post, path = "/market/bid", tag = "market",
    security(("execution_token" = [])), request_body = PlaceBid,
    params(IdempotencyHeader),
    responses(
        (status = 201, body = BidView, description = "the bid was placed and its amount held"),
        (status = 200, body = BidView, description = "a retry: the first bid, nothing more held",
            headers(("Idempotent-Replayed" = String, description = "`true`"))),
        Errors))]
async fn place_bid(
    caller: Caller,
    State(s): State<ApiState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<PlaceBid>,
) -> ApiResult<Response> {
    let idem = idempotency::request(&headers, &req)?;
    let bundle = req.bundle.parse(&s.config.bundle_limits())?;
    let amount = amount("amount", &req.amount)?;
    let (bid, replayed) = s
        .store
        .place_bid_once(
            NewBid {
                payer: caller.agent,
                beneficiary: req.beneficiary.map(AgentId).unwrap_or(caller.agent),
                bundle,
                amount,
                ttl_cycles: s.config.economy.bid_ttl_cycles,
                max_pending: s.config.economy.max_pending_bids,
            },
            idem,
        )
        .await?;
    Ok(idempotency::answer(BidView::from(&bid), replayed))
}

/// Paging of an agent's bids.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// At most this many, newest first (1..=1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// The caller's bids: those it placed and those placed for it, newest first.
#[utoipa::path(get, path = "/market/bids", tag = "market",
    security(("execution_token" = [])), params(ListQuery),
    responses((status = 200, body = Vec<BidView>), Errors))]
async fn list_bids(
    caller: Caller,
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<BidView>>> {
    let n = limit(q.limit, 100, 1000)?;
    let bids = s.store.bids_for(caller.agent, Newest::first(n)).await?;
    Ok(Json(bids.iter().map(BidView::from).collect()))
}

/// A raise.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RaiseBid {
    /// The new amount; above the current one. The difference is held.
    #[schema(value_type = PositiveAmount, required = true)]
    #[serde(default)]
    pub amount: serde_json::Value,
}

/// Raise a pending bid the caller placed.
#[utoipa::path(patch, path = "/market/bid/{id}", tag = "market",
    security(("execution_token" = [])), params(("id" = i64, Path, description = "bid id")),
    request_body = RaiseBid,
    responses((status = 200, body = BidView), Errors))]
async fn raise_bid(
    caller: Caller,
    State(s): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<RaiseBid>,
) -> ApiResult<Json<BidView>> {
    let amount = amount("amount", &req.amount)?;
    let bid = s.store.raise_bid(caller.agent, BidId(id), amount).await?;
    Ok(Json((&bid).into()))
}

/// Withdraw a pending bid the caller placed; its hold is released.
#[utoipa::path(delete, path = "/market/bid/{id}", tag = "market",
    security(("execution_token" = [])), params(("id" = i64, Path, description = "bid id")),
    responses((status = 200, body = BidView), Errors))]
async fn withdraw_bid(
    caller: Caller,
    State(s): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<BidView>> {
    s.store.withdraw_bid(caller.agent, BidId(id)).await?;
    Ok(Json((&s.store.bid(BidId(id)).await?).into()))
}
