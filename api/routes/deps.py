from fastapi import Request

from api.stores import Stores


def get_stores(request: Request) -> Stores:
    return request.app.state.stores
