"""Catalogue rules shared by importers and projections."""

# Stock codes of the retail data that are postage, fees, discounts, manual
# adjustments, samples, test items or gift vouchers rather than goods.
SERVICE_CODES = frozenset({
    "POST", "DOT", "C2", "C3", "M", "m", "D", "S", "B", "CRUK", "PADS",
    "BANK CHARGES", "AMAZONFEE", "ADJUST", "ADJUST2", "TEST001", "TEST002", "GIFT",
})
SERVICE_CODE_PREFIXES = ("gift_",)


def is_service_code(product_id: str) -> bool:
    return product_id in SERVICE_CODES or product_id.startswith(SERVICE_CODE_PREFIXES)
