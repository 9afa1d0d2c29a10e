import his_sdk
import his_sdk.client
import his_sdk.server


def test_top_level_exports_are_pinned():
    assert set(his_sdk.__all__) == {
        "AsyncHisClient",
        "AuthenticationError",
        "HisClient",
        "HisError",
        "InvalidRequestError",
        "NotFoundError",
        "PermissionDeniedError",
        "SearchPage",
        "TlsConfig",
        "UnsupportedError",
        "UnsupportedParameterError",
        "UpstreamUnavailableError",
        "__version__",
    }
    for name in his_sdk.__all__:
        assert hasattr(his_sdk, name)


def test_subpackage_exports_exist():
    for module in (his_sdk.client, his_sdk.server):
        for name in module.__all__:
            assert getattr(module, name) is not None
