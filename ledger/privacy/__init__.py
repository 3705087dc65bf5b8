"""Personal-data protection: keyring, envelope encryption, blind indexes, masking, key rotation.

See docs/privacy.md for the scheme. Nothing here imports services, the API, jobs or the CLI.
"""

from __future__ import annotations

from ledger.privacy.blind import BLIND_INDEX_BYTES, Purpose, blind_index, id_number_index, phone_index
from ledger.privacy.envelope import (
    DecryptionError,
    SealedProfile,
    decrypt_profile,
    encrypt_profile,
    new_data_key,
    rewrap_data_key,
    seal_new_profile,
    unwrap_data_key,
    wrap_data_key,
)
from ledger.privacy.keyring import (
    KEY_BYTES,
    KEY_FILE_NAME,
    Keyring,
    KeyringError,
    encode_key,
    generate_key,
    load_or_create_key_file,
)
from ledger.privacy.masking import (
    mask_id_number,
    mask_name,
    mask_name_on_certificate,
    mask_phone,
    mask_profile,
)
from ledger.privacy.rotation import rewrap_all

__all__ = [
    "BLIND_INDEX_BYTES",
    "KEY_BYTES",
    "KEY_FILE_NAME",
    "DecryptionError",
    "Keyring",
    "KeyringError",
    "Purpose",
    "SealedProfile",
    "blind_index",
    "decrypt_profile",
    "encode_key",
    "encrypt_profile",
    "generate_key",
    "id_number_index",
    "load_or_create_key_file",
    "mask_id_number",
    "mask_name",
    "mask_name_on_certificate",
    "mask_phone",
    "mask_profile",
    "new_data_key",
    "phone_index",
    "rewrap_all",
    "rewrap_data_key",
    "seal_new_profile",
    "unwrap_data_key",
    "wrap_data_key",
]
