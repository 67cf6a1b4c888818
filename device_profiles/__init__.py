"""Device profiles: devices as data. Turns (topic, payload) into canonical readings or rejections.

Public API::

    registry = load_profiles()                      # shipped profiles, checked at load
    registry.decode(topic, payload, now_ms)         # -> list[Reading] | Rejection
    registry.subscriptions()                        # MQTT filters to subscribe to
    registry.profile_for("smoke").heartbeat         # native profile of a device type
    registry.get("huawei.smoke.ws2").telemetry      # a vendor model, resolved onto native fields
    registry.examples()                             # every profile's examples
"""

from device_profiles.codecs import Codec, DecodeFn, codec_names, get_codec, register_codec
from device_profiles.compiled import CompiledProfile
from device_profiles.loader import ProfileLoadError, load_profile_file
from device_profiles.registry import (
    DEFAULT_PROFILES_DIR,
    FUTURE_TOLERANCE_MS,
    ProfileExample,
    ProfileRegistry,
    load_profiles,
)
from device_profiles.schema import (
    CommandSpec,
    DeviceProfile,
    EventsSpec,
    Example,
    ExpectReading,
    ExpectRejection,
    FieldMapping,
    FieldSpec,
    Heartbeat,
    Identity,
    VendorEventsSpec,
    VendorProfile,
)

__all__ = [
    "DEFAULT_PROFILES_DIR",
    "FUTURE_TOLERANCE_MS",
    "Codec",
    "CommandSpec",
    "CompiledProfile",
    "DecodeFn",
    "DeviceProfile",
    "EventsSpec",
    "Example",
    "ExpectReading",
    "ExpectRejection",
    "FieldMapping",
    "FieldSpec",
    "Heartbeat",
    "Identity",
    "ProfileExample",
    "ProfileLoadError",
    "ProfileRegistry",
    "VendorEventsSpec",
    "VendorProfile",
    "codec_names",
    "get_codec",
    "load_profile_file",
    "load_profiles",
    "register_codec",
]
