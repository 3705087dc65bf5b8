"""Domain error codes, in precedence order, and the one exception type that carries them.

Exception tree::

    LedgerError                 every business failure; ``code`` is a stable ErrorCode
    (nothing else)              anything else raised by the ledger is a bug and surfaces as a 500

When a request has several problems, the one reported is the first in the order below, so the
same bad request always fails with the same code (a replayed idempotency key relies on that).
The docs list these codes in the same order: docs/reference/errors.md.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Stable, documented failure codes. Never renumber or rename: clients match on them."""

    # 0. Who is asking (HTTP and identity)
    UNAUTHENTICATED = "UNAUTHENTICATED"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    RATE_LIMITED = "RATE_LIMITED"
    FORBIDDEN = "FORBIDDEN"
    # 1. The request itself (checked before any database access)
    MALFORMED_REQUEST = "MALFORMED_REQUEST"
    MALFORMED_ID = "MALFORMED_ID"
    INVALID_IDEMPOTENCY_KEY = "INVALID_IDEMPOTENCY_KEY"
    INVALID_KIND = "INVALID_KIND"
    NON_CANONICAL_TEXT = "NON_CANONICAL_TEXT"
    INVALID_UNIT = "INVALID_UNIT"
    NO_POSTINGS = "NO_POSTINGS"
    TOO_MANY_POSTINGS = "TOO_MANY_POSTINGS"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    AMOUNT_OVERFLOW = "AMOUNT_OVERFLOW"
    DUPLICATE_ACCOUNT = "DUPLICATE_ACCOUNT"
    UNBALANCED_POSTINGS = "UNBALANCED_POSTINGS"
    INVALID_TIMEOUT = "INVALID_TIMEOUT"
    INVALID_EXPIRY = "INVALID_EXPIRY"
    INVALID_ACCOUNT_FLAGS = "INVALID_ACCOUNT_FLAGS"
    INVALID_FIELD = "INVALID_FIELD"
    CONSENT_REQUIRED = "CONSENT_REQUIRED"
    GUARDIAN_REQUIRED = "GUARDIAN_REQUIRED"
    # 2. Idempotency (a replay with the same request returns the first outcome instead)
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    # 3. What the request refers to
    COMMUNITY_NOT_FOUND = "COMMUNITY_NOT_FOUND"
    ACCOUNT_NOT_FOUND = "ACCOUNT_NOT_FOUND"
    UNIT_MISMATCH = "UNIT_MISMATCH"
    ACCOUNT_CLOSED = "ACCOUNT_CLOSED"
    TRANSFER_NOT_FOUND = "TRANSFER_NOT_FOUND"
    PENDING_NOT_FOUND = "PENDING_NOT_FOUND"
    USER_NOT_FOUND = "USER_NOT_FOUND"
    PERSON_NOT_FOUND = "PERSON_NOT_FOUND"
    HOUSEHOLD_NOT_FOUND = "HOUSEHOLD_NOT_FOUND"
    ACTIVITY_NOT_FOUND = "ACTIVITY_NOT_FOUND"
    SERVICE_RECORD_NOT_FOUND = "SERVICE_RECORD_NOT_FOUND"
    CORRECTION_NOT_FOUND = "CORRECTION_NOT_FOUND"
    EXCHANGE_NOT_FOUND = "EXCHANGE_NOT_FOUND"
    RELATION_NOT_FOUND = "RELATION_NOT_FOUND"
    HARDSHIP_FLAG_NOT_FOUND = "HARDSHIP_FLAG_NOT_FOUND"
    CERTIFICATE_NOT_FOUND = "CERTIFICATE_NOT_FOUND"
    ITEM_NOT_FOUND = "ITEM_NOT_FOUND"
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    PICKUP_CODE_INVALID = "PICKUP_CODE_INVALID"
    # 4. The state of what it refers to
    PENDING_ALREADY_POSTED = "PENDING_ALREADY_POSTED"
    PENDING_ALREADY_VOIDED = "PENDING_ALREADY_VOIDED"
    PENDING_EXPIRED = "PENDING_EXPIRED"
    POSTINGS_DO_NOT_MATCH_PENDING = "POSTINGS_DO_NOT_MATCH_PENDING"
    POST_EXCEEDS_PENDING = "POST_EXCEEDS_PENDING"
    CANNOT_REVERSE_PENDING = "CANNOT_REVERSE_PENDING"
    ALREADY_REVERSED = "ALREADY_REVERSED"
    TRANSFER_EXISTS = "TRANSFER_EXISTS"
    ACCOUNT_EXISTS = "ACCOUNT_EXISTS"
    USERNAME_TAKEN = "USERNAME_TAKEN"
    DUPLICATE_PERSON = "DUPLICATE_PERSON"
    PERSON_ERASED = "PERSON_ERASED"
    HOUSEHOLD_CODE_TAKEN = "HOUSEHOLD_CODE_TAKEN"
    HOUSEHOLD_DISSOLVED = "HOUSEHOLD_DISSOLVED"
    ALREADY_IN_HOUSEHOLD = "ALREADY_IN_HOUSEHOLD"
    NOT_IN_HOUSEHOLD = "NOT_IN_HOUSEHOLD"
    SETTING_NOT_LATER = "SETTING_NOT_LATER"
    NOT_YET_CHECKPOINTED = "NOT_YET_CHECKPOINTED"
    CALENDAR_NOT_COVERED = "CALENDAR_NOT_COVERED"
    INVALID_STATE_TRANSITION = "INVALID_STATE_TRANSITION"
    VERIFIER_IS_RECORDER = "VERIFIER_IS_RECORDER"
    RECORDING_OVERDUE = "RECORDING_OVERDUE"
    CORRECTION_PENDING = "CORRECTION_PENDING"
    RELATION_EXISTS = "RELATION_EXISTS"
    ACTOR_NOT_ALLOWED = "ACTOR_NOT_ALLOWED"
    WITHDRAWAL_AGE_NOT_REACHED = "WITHDRAWAL_AGE_NOT_REACHED"
    GIFT_NOT_ALLOWED = "GIFT_NOT_ALLOWED"
    CROSS_COMMUNITY_DISABLED = "CROSS_COMMUNITY_DISABLED"
    NO_SERVICE_TO_CERTIFY = "NO_SERVICE_TO_CERTIFY"
    ITEM_NOT_ACTIVE = "ITEM_NOT_ACTIVE"
    SCORE_GATE_NOT_MET = "SCORE_GATE_NOT_MET"
    REDEMPTION_LIMIT_REACHED = "REDEMPTION_LIMIT_REACHED"
    OUT_OF_STOCK = "OUT_OF_STOCK"
    # 5. Balances
    BALANCE_OVERFLOW = "BALANCE_OVERFLOW"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"

    @property
    def message_zh(self) -> str:
        return MESSAGES_ZH[self]

    @property
    def precedence(self) -> int:
        return _PRECEDENCE[self]


MESSAGES_ZH: dict[ErrorCode, str] = {
    ErrorCode.UNAUTHENTICATED: "请先登录",
    ErrorCode.INVALID_CREDENTIALS: "用户名或密码不正确",
    ErrorCode.RATE_LIMITED: "尝试次数过多，请稍后再试",
    ErrorCode.FORBIDDEN: "没有权限执行此操作",
    ErrorCode.MALFORMED_REQUEST: "请求格式不正确",
    ErrorCode.MALFORMED_ID: "编号格式不正确",
    ErrorCode.INVALID_IDEMPOTENCY_KEY: "幂等键格式不正确（1–128 位字母、数字或 ._:- ）",
    ErrorCode.INVALID_KIND: "业务类型格式不正确",
    ErrorCode.NON_CANONICAL_TEXT: "文本含有无法规范编码的字符",
    ErrorCode.INVALID_UNIT: "未知的计量单位",
    ErrorCode.NO_POSTINGS: "转账至少需要一条分录",
    ErrorCode.TOO_MANY_POSTINGS: "单笔转账的分录过多",
    ErrorCode.INVALID_AMOUNT: "金额必须为非零整数",
    ErrorCode.AMOUNT_OVERFLOW: "金额超出允许范围",
    ErrorCode.DUPLICATE_ACCOUNT: "同一账户在一笔转账中只能出现一次",
    ErrorCode.UNBALANCED_POSTINGS: "各计量单位的分录合计必须为零",
    ErrorCode.INVALID_TIMEOUT: "预留期限不正确",
    ErrorCode.INVALID_EXPIRY: "积分有效期不正确",
    ErrorCode.INVALID_ACCOUNT_FLAGS: "账户属性组合不正确",
    ErrorCode.INVALID_FIELD: "字段内容不符合要求",
    ErrorCode.CONSENT_REQUIRED: "由组织录入个人信息须经本人同意",
    ErrorCode.GUARDIAN_REQUIRED: "未成年人须登记监护人",
    ErrorCode.IDEMPOTENCY_CONFLICT: "该幂等键已用于另一笔不同的请求",
    ErrorCode.COMMUNITY_NOT_FOUND: "社区不存在",
    ErrorCode.ACCOUNT_NOT_FOUND: "账户不存在",
    ErrorCode.UNIT_MISMATCH: "分录的计量单位与账户不一致",
    ErrorCode.ACCOUNT_CLOSED: "账户已关闭",
    ErrorCode.TRANSFER_NOT_FOUND: "转账不存在",
    ErrorCode.PENDING_NOT_FOUND: "预留转账不存在",
    ErrorCode.USER_NOT_FOUND: "用户不存在",
    ErrorCode.PERSON_NOT_FOUND: "人员不存在",
    ErrorCode.HOUSEHOLD_NOT_FOUND: "户不存在",
    ErrorCode.ACTIVITY_NOT_FOUND: "活动不存在",
    ErrorCode.SERVICE_RECORD_NOT_FOUND: "志愿服务记录不存在",
    ErrorCode.CORRECTION_NOT_FOUND: "更正申请不存在",
    ErrorCode.EXCHANGE_NOT_FOUND: "时间银行服务交换不存在",
    ErrorCode.RELATION_NOT_FOUND: "亲友关系记录不存在",
    ErrorCode.HARDSHIP_FLAG_NOT_FOUND: "困难认定记录不存在",
    ErrorCode.CERTIFICATE_NOT_FOUND: "志愿服务证明不存在",
    ErrorCode.ITEM_NOT_FOUND: "积分超市商品不存在",
    ErrorCode.ORDER_NOT_FOUND: "兑换订单不存在",
    ErrorCode.PICKUP_CODE_INVALID: "取货码无效，请核对后重试",
    ErrorCode.PENDING_ALREADY_POSTED: "预留转账已入账",
    ErrorCode.PENDING_ALREADY_VOIDED: "预留转账已撤销",
    ErrorCode.PENDING_EXPIRED: "预留转账已过期",
    ErrorCode.POSTINGS_DO_NOT_MATCH_PENDING: "入账分录与预留转账不一致",
    ErrorCode.POST_EXCEEDS_PENDING: "入账金额超过预留金额",
    ErrorCode.CANNOT_REVERSE_PENDING: "预留转账不能冲正，请撤销预留",
    ErrorCode.ALREADY_REVERSED: "该转账已冲正过",
    ErrorCode.TRANSFER_EXISTS: "该转账编号已被使用",
    ErrorCode.ACCOUNT_EXISTS: "该对象已开立此计量单位的账户",
    ErrorCode.USERNAME_TAKEN: "用户名已被使用",
    ErrorCode.DUPLICATE_PERSON: "该证件号码已在本社区登记",
    ErrorCode.PERSON_ERASED: "该人员的个人信息已按本人要求删除",
    ErrorCode.HOUSEHOLD_CODE_TAKEN: "户编号已被使用",
    ErrorCode.HOUSEHOLD_DISSOLVED: "该户已注销",
    ErrorCode.ALREADY_IN_HOUSEHOLD: "该人员已属于另一户",
    ErrorCode.NOT_IN_HOUSEHOLD: "该人员不是本户成员",
    ErrorCode.SETTING_NOT_LATER: "新版本的生效日期须晚于现行版本",
    ErrorCode.NOT_YET_CHECKPOINTED: "该记录尚未纳入已签名的检查点，请稍后再试",
    ErrorCode.CALENDAR_NOT_COVERED: "该日期超出法定节假日历的覆盖年份，无法计算工作日",
    ErrorCode.INVALID_STATE_TRANSITION: "当前状态下不能执行此操作",
    ErrorCode.VERIFIER_IS_RECORDER: "记录人不能核实或驳回自己录入的记录",
    ErrorCode.RECORDING_OVERDUE: "已超过记录期限，须经管理员特批后方可入账",
    ErrorCode.CORRECTION_PENDING: "该记录已有待处理的更正申请",
    ErrorCode.RELATION_EXISTS: "这两人之间已登记了另一种关系，请先解除",
    ErrorCode.ACTOR_NOT_ALLOWED: "此步骤须由相应的当事人或工作人员办理",
    ErrorCode.WITHDRAWAL_AGE_NOT_REACHED: "未到可使用时间币兑换服务的年龄",
    ErrorCode.GIFT_NOT_ALLOWED: "时间币只能赠与规定范围内的亲友",
    ErrorCode.CROSS_COMMUNITY_DISABLED: "本街道未开通时间币跨社区通存通兑",
    ErrorCode.NO_SERVICE_TO_CERTIFY: "所选期间没有已入账的志愿服务时长，无法出具证明",
    ErrorCode.ITEM_NOT_ACTIVE: "该商品当前不可兑换",
    ErrorCode.SCORE_GATE_NOT_MET: "本户积分未达到兑换要求",
    ErrorCode.REDEMPTION_LIMIT_REACHED: "本期兑换次数或数量已达上限",
    ErrorCode.OUT_OF_STOCK: "商品库存不足",
    ErrorCode.BALANCE_OVERFLOW: "余额超出允许范围",
    ErrorCode.INSUFFICIENT_FUNDS: "余额不足",
}

_PRECEDENCE: dict[ErrorCode, int] = {code: i for i, code in enumerate(ErrorCode)}


class LedgerError(Exception):
    """A business failure with a stable code.

    ``detail`` holds only identifiers and numbers (field names, account ids, amounts), never
    personal data, because it is logged and returned to clients.
    """

    def __init__(self, code: ErrorCode, *, field: str | None = None, **detail: str | int | None) -> None:
        self.code = code
        self.field = field
        self.detail: dict[str, str | int | None] = dict(detail)
        if field is not None:
            self.detail["field"] = field
        super().__init__(f"{code}: {code.message_zh}")

    def to_dict(self) -> dict[str, object]:
        return {"code": str(self.code), "message": self.code.message_zh, "detail": dict(self.detail)}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> LedgerError:
        raw_detail = data.get("detail")
        detail = raw_detail if isinstance(raw_detail, dict) else {}
        field = detail.pop("field", None)
        return cls(ErrorCode(str(data["code"])), field=field if isinstance(field, str) else None, **detail)
