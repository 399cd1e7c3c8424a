"""Rate limits per shop, on the sandbox's frozen clock: the REST leaky bucket (exact 429s and
header values), forced 429s, the request log and the GraphQL cost bucket."""

from __future__ import annotations

import httpx

from tests.sandbox.conftest import Shops, advance

EXCEEDED = (
    "Exceeded 2 calls per second for api client. "
    "Reduce request rates to resume uninterrupted service."
)


def test_a_burst_of_60_on_a_standard_plan(shops: Shops, control: httpx.Client) -> None:
    shop = shops.create(plan="standard")
    responses = [shop.api.get("/locations.json") for _ in range(60)]
    assert [r.status_code for r in responses] == [200] * 40 + [429] * 20
    assert [r.headers["x-shopify-shop-api-call-limit"] for r in responses[:40]] == [
        f"{used}/40" for used in range(1, 41)
    ]
    for refused in responses[40:]:
        assert refused.headers["x-shopify-shop-api-call-limit"] == "40/40"
        assert refused.headers["retry-after"] == "0.5"
        assert refused.json() == {"errors": EXCEEDED}
    log = shop.control.get("/requests").json()
    assert (log["requests"], log["rest"], log["throttled"], log["forced"]) == (60, 60, 20, 0)

    advance(control, 1.0)  # 2 calls leak out
    after = [shop.api.get("/locations.json") for _ in range(3)]
    assert [r.status_code for r in after] == [200, 200, 429]
    assert [r.headers["x-shopify-shop-api-call-limit"] for r in after] == [
        "39/40",
        "40/40",
        "40/40",
    ]
    advance(control, 20.0)  # empty again
    assert shop.api.get("/locations.json").headers["x-shopify-shop-api-call-limit"] == "1/40"


def test_bucket_sizes_per_plan_and_per_shop(shops: Shops) -> None:
    advanced = shops.create(plan="advanced")
    plus = shops.create(plan="plus")
    standard = shops.create(plan="standard")
    assert advanced.api.get("/shop.json").headers["x-shopify-shop-api-call-limit"] == "1/80"
    assert plus.api.get("/shop.json").headers["x-shopify-shop-api-call-limit"] == "1/400"
    for _ in range(40):
        standard.api.get("/shop.json")
    assert standard.api.get("/shop.json").status_code == 429
    other = shops.create(plan="standard")  # buckets are per shop
    assert other.api.get("/shop.json").headers["x-shopify-shop-api-call-limit"] == "1/40"
    advanced_refusal = None
    for _ in range(81):
        advanced_refusal = advanced.api.get("/shop.json")
    assert advanced_refusal is not None
    assert advanced_refusal.status_code == 429
    assert advanced_refusal.json()["errors"].startswith("Exceeded 4 calls per second")
    assert advanced_refusal.headers["retry-after"] == "0.3"  # 1 call / 4 per s, rounded up


def test_forced_429s(shops: Shops) -> None:
    shop = shops.create(plan="standard")
    injected = shop.control.post("/throttle", json={"count": 3, "retry_after": 1.0})
    assert injected.json() == {"rest": 3, "graphql": 0}
    responses = [shop.api.get("/shop.json") for _ in range(4)]
    assert [r.status_code for r in responses] == [429, 429, 429, 200]
    assert [r.headers.get("retry-after") for r in responses] == ["1.0", "1.0", "1.0", None]
    assert [r.headers["x-shopify-shop-api-call-limit"] for r in responses] == [
        "0/40",
        "0/40",
        "0/40",
        "1/40",
    ]
    assert responses[0].json() == {"errors": EXCEEDED}
    log = shop.control.get("/requests", params={"recent": 4}).json()
    assert (log["requests"], log["throttled"], log["forced"]) == (4, 3, 3)
    assert [entry["status"] for entry in log["recent"]] == [429, 429, 429, 200]
    assert shop.control.delete("/requests").status_code == 200
    assert shop.control.get("/requests").json()["requests"] == 0


def test_request_counts_for_every_shop(shops: Shops, control: httpx.Client) -> None:
    first = shops.create()
    second = shops.create()
    for _ in range(3):
        first.api.get("/shop.json")
    second.graphql("{ shop { name } }")
    counts = control.get("/_sandbox/requests").json()["shops"]
    assert (counts[first.domain]["rest"], counts[first.domain]["graphql"]) == (3, 0)
    assert (counts[second.domain]["rest"], counts[second.domain]["graphql"]) == (0, 1)


def test_graphql_cost_refund_and_throttle(shops: Shops, control: httpx.Client) -> None:
    shop = shops.create(products=5, orders=5, seed=1)
    shop.update(limits={"graphql_bucket": 100, "graphql_restore": 10})
    query = "{ orders(first: 10) { edges { node { id name } } } }"
    answer = shop.graphql(query)
    assert len(answer["data"]["orders"]["edges"]) == 5
    assert answer["extensions"]["cost"] == {
        "requestedQueryCost": 12,  # 2 + 10 x 1
        "actualQueryCost": 7,  # 2 + 5 returned
        "throttleStatus": {
            "maximumAvailable": 100.0,
            "currentlyAvailable": 93,
            "restoreRate": 10.0,
        },
    }
    expensive = "{ orders(first: 94) { nodes { id } } }"  # 96 points > 93 available
    throttled = shop.graphql(expensive)
    assert throttled == {
        "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
        "extensions": {
            "cost": {
                "requestedQueryCost": 96,
                "actualQueryCost": None,
                "throttleStatus": {
                    "maximumAvailable": 100.0,
                    "currentlyAvailable": 93,
                    "restoreRate": 10.0,
                },
            }
        },
    }
    advance(control, 1.0)  # 10 points restored, capped at 100
    allowed = shop.graphql(expensive)
    assert "errors" not in allowed
    assert allowed["extensions"]["cost"]["actualQueryCost"] == 7
    assert allowed["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 93
    log = shop.control.get("/requests").json()
    assert (log["graphql"], log["throttled"]) == (3, 1)


def test_graphql_mutation_cost_max_cost_and_forced_throttle(shops: Shops) -> None:
    shop = shops.create(products=3, orders=3, seed=1)
    too_big = shop.graphql(
        "{ orders(first: 250) { nodes { id lineItems(first: 10) { nodes { id } } } } }"
    )
    (error,) = too_big["errors"]
    assert error["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert error["extensions"]["cost"] == 2 + 250 * (1 + 2 + 10)
    assert error["message"].startswith("Query cost is 3252, which exceeds")
    mutation = shop.graphql(
        'mutation { bulkOperationCancel(id: "gid://shopify/BulkOperation/1") '
        "{ userErrors { message } } }"
    )
    assert mutation["extensions"]["cost"]["requestedQueryCost"] == 10
    assert mutation["extensions"]["cost"]["actualQueryCost"] == 10
    shop.control.post("/throttle", json={"count": 1, "api": "graphql"})
    forced = shop.graphql("{ shop { name } }")
    assert forced["errors"] == [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]
    assert "errors" not in shop.graphql("{ shop { name } }")
