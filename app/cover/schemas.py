"""API shapes of policies, cover decisions, country limits and FX rates."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import ClassVar, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from app.core.fields import (
    Country,
    Currency,
    DecimalStr,
    IsoDate,
    MoneyModel,
    PolicyRef,
    Ref,
    StrictModel,
    rate_problem,
)

PolicyKind = Literal["whole_turnover", "excess_of_loss", "top_up"]
DecisionStatus = Literal["granted", "partly_granted", "reduced", "refused", "withdrawn"]


class CountryOverride(StrictModel):
    max_credit_period_days: int | None = Field(default=None, ge=0, le=3650)
    claim_deadline_days: int | None = Field(default=None, ge=0, le=3650)


class PolicyIn(MoneyModel):
    """A policy. Writing an existing one with other terms is an endorsement from `effective_from` (default: today):
    deliveries made before it keep the terms they were made under (DOMAIN.md rule 8)."""

    money_fields: ClassVar[dict[str, bool]] = {
        "aggregate_first_loss": False, "discretionary_limit_max": False, "per_buyer_cap": False,
        "minimum_premium": False}

    insurer: str = Field(min_length=1, max_length=200)
    kind: PolicyKind
    currency: Currency
    starts_on: IsoDate
    ends_on: IsoDate
    indemnity_rate: DecimalStr = Field(description="Share of a covered loss the insurer pays, 0 < r <= 1")
    max_credit_period_days: int | None = Field(default=None, ge=0, le=3650,
                                               description="Primary only (required): longest payment terms covered")
    claim_deadline_days: int | None = Field(default=None, ge=0, le=3650,
                                            description="Primary only (required): days after the original due date")
    max_extension_days: int | None = Field(default=None, ge=0, le=3650, description="Primary only: stop of cover")
    covered_countries: list[Country] = Field(default_factory=list, description="Primary only; empty: worldwide")
    excluded_countries: list[Country] = Field(default_factory=list, description="Primary only")
    country_overrides: dict[str, CountryOverride] = Field(default_factory=dict, description="Primary only")
    aggregate_first_loss: DecimalStr | None = Field(default=None, description="Excess of loss only (required)")
    discretionary_limit_max: DecimalStr | None = Field(
        default=None, description="Primary only: ceiling of the discretionary limits the insured may set (none: "
                                  "no discretionary limits); required for excess of loss")
    primary_policy_ref: PolicyRef | None = Field(default=None, description="Top Up only")
    mode: Literal["complement", "substitute"] | None = Field(default=None, description="Top Up only")
    ratio: DecimalStr | None = Field(default=None, description="Top Up complement: x primary limit (default 1.0)")
    per_buyer_cap: DecimalStr | None = Field(default=None, description="Top Up only")
    countries: list[Country] = Field(default_factory=list, description="Top Up scope; empty: the primary's")
    follows_discretionary: bool | None = Field(
        default=None, description="Top Up complement only: also follow the primary's discretionary limits "
                                  "(default: the insurer's limits only)")
    effective_from: IsoDate | None = Field(
        default=None, description="When changed terms take effect (an endorsement); default today. Ignored when "
                                  "the policy is created: its terms apply from starts_on")
    premium_rate: DecimalStr | None = Field(default=None, description="Premium as a share of the insured turnover")
    minimum_premium: DecimalStr | None = Field(default=None, description="Minimum premium, policy currency")
    overdue_declaration_days: int | None = Field(
        default=None, ge=0, le=3650,
        description="Declare an unpaid invoice this many days after its due date (default: claim deadline - 30)",
    )

    @field_validator("ends_on")
    @classmethod
    def _ends(cls, v: date, info: ValidationInfo) -> date:
        starts = info.data.get("starts_on")
        if starts is not None and v < starts:
            raise ValueError("must be on or after starts_on")
        return v

    @field_validator("indemnity_rate")
    @classmethod
    def _rate(cls, v: Decimal) -> Decimal:
        if not (0 < v <= 1):
            raise ValueError("must be greater than 0 and at most 1")
        return v

    @field_validator("ratio")
    @classmethod
    def _ratio(cls, v: Decimal | None) -> Decimal | None:
        if v is not None and not (0 < v <= 10):
            raise ValueError("must be greater than 0 and at most 10")
        return v

    @field_validator("premium_rate")
    @classmethod
    def _premium_rate(cls, v: Decimal | None) -> Decimal | None:
        if v is None:
            return v
        if not (0 <= v < 1) or v != v.quantize(Decimal("0.000001")):
            raise ValueError("must be at least 0, below 1, with at most 6 decimals")
        return v

    @field_validator("country_overrides")
    @classmethod
    def _override_keys(cls, v: dict[str, CountryOverride]) -> dict[str, CountryOverride]:
        from app.core.money import is_country

        bad = [k for k in v if not is_country(k)]
        if bad:
            raise ValueError(f"keys must be ISO 3166-1 alpha-2 country codes: {', '.join(bad)}")
        return v


class TermsOut(BaseModel):
    effective_from: date
    ends_on: date
    indemnity_rate: Decimal
    max_credit_period_days: int | None
    claim_deadline_days: int | None
    max_extension_days: int | None
    covered_countries: list[str]
    excluded_countries: list[str]
    country_overrides: dict[str, CountryOverride]
    aggregate_first_loss: Decimal | None
    discretionary_limit_max: Decimal | None
    ratio: Decimal | None
    per_buyer_cap: Decimal | None
    countries: list[str]
    follows_discretionary: bool


class PolicyOut(TermsOut):
    """A policy with the terms in force on `as_of` (today) at the top level, and every version in `versions`."""

    premium_rate: Decimal | None = None
    minimum_premium: Decimal | None = None
    overdue_declaration_days: int | None = None
    policy_ref: str
    insurer: str
    kind: PolicyKind
    currency: str
    starts_on: date
    primary_policy_ref: str | None
    mode: str | None
    as_of: date
    versions: list[TermsOut] = Field(description="The terms' history: the original terms, then each endorsement")


class LimitIn(MoneyModel):
    money_fields: ClassVar[dict[str, bool]] = {"amount": False, "requested_amount": False}
    money_currency: ClassVar[str | None] = None  # the policy's: checked by the service

    buyer_ref: Ref
    amount: DecimalStr | None = Field(default=None, description="Policy currency; 0 or omitted when refused/withdrawn")
    status: DecisionStatus
    effective_from: IsoDate
    expires_on: IsoDate | None = None
    source: Literal["insurer", "discretionary"] = "insurer"
    decision_ref: str | None = Field(default=None, max_length=100)
    requested_amount: DecimalStr | None = None
    max_credit_period_days: int | None = Field(default=None, ge=0, le=3650)

    @field_validator("expires_on")
    @classmethod
    def _expires(cls, v: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("effective_from")
        if v is not None and start is not None and v < start:
            raise ValueError("must be on or after effective_from")
        return v


class LimitOut(BaseModel):
    id: int
    policy_ref: str
    buyer_ref: str
    currency: str
    amount: Decimal
    status: DecisionStatus
    effective_from: date
    expires_on: date | None
    source: str
    decision_ref: str | None
    requested_amount: Decimal | None
    max_credit_period_days: int | None


class LimitInForceOut(BaseModel):
    policy_ref: str
    layer: Literal["primary", "top_up"]
    currency: str
    amount: Decimal
    source: str = Field(description="insurer | discretionary | complement (derived from the primary) | none")
    decision_id: int | None = None


class BuyerLimitsOut(BaseModel):
    buyer_ref: str
    at: date
    in_force: list[LimitInForceOut]
    decisions: list[LimitOut]


class CountryLimitIn(MoneyModel):
    money_fields: ClassVar[dict[str, bool]] = {"amount": False}

    amount: DecimalStr
    currency: Currency
    policy_ref: PolicyRef | None = None


class CountryLimitOut(BaseModel):
    country: str
    amount: Decimal
    currency: str
    policy_ref: str | None


class FxRateIn(StrictModel):
    date: IsoDate
    base: Currency
    quote: Currency
    rate: DecimalStr

    @field_validator("rate")
    @classmethod
    def _rate(cls, v: Decimal) -> Decimal:
        problem = rate_problem(v)
        if problem is not None:
            raise ValueError(problem)
        return v


class FxRatesIn(StrictModel):
    rates: list[FxRateIn] = Field(min_length=1, max_length=100_000)


class FxRateOut(BaseModel):
    date: date
    base: str
    quote: str
    rate: Decimal


class FxImportOut(BaseModel):
    stored: int
    days: int
    currencies: list[str]
