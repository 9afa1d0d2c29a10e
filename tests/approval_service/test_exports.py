import approval_service


def test_exports_are_pinned():
    assert set(approval_service.__all__) == {
        "ApprovalClient",
        "ApprovalPolicy",
        "ApprovalRequest",
        "ApprovalService",
        "ApprovalServicer",
        "AsyncApprovalClient",
        "Database",
        "DecisionAction",
        "DecisionRecord",
        "HistoryEvent",
        "Outcome",
        "Party",
        "RequestPage",
        "RequestQuery",
        "RequestStatus",
        "RequestVersion",
        "ResourceFacts",
        "RiskAssessment",
        "RiskTier",
        "approvals",
        "build_task",
        "current_revision",
        "head_revision",
        "migrate",
    }
    for name in approval_service.__all__:
        assert getattr(approval_service, name) is not None
