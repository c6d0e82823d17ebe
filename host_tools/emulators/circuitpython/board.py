"""CircuitPython's `board` for the Adafruit Feather ESP32-S3 (4 MB flash,
2 MB PSRAM): its pin names, each a `microcontroller.Pin` (the GPIO numbers
of CircuitPython's ports/espressif/boards/adafruit_feather_esp32s3_4mbflash_2mbpsram/pins.c).
`board_id` is what boot_out.txt names."""

from microcontroller import Pin

board_id = "adafruit_feather_esp32s3_4mbflash_2mbpsram"

_PINS = (("A0", 18), ("A1", 17), ("A2", 16), ("A3", 15), ("A4", 14), ("A5", 8), ("D5", 5), ("D6", 6),
         ("D9", 9), ("D10", 10), ("D11", 11), ("D12", 12), ("D13", 13), ("SDA", 3), ("SCL", 4),
         ("TX", 39), ("RX", 38), ("SCK", 36), ("MOSI", 35), ("MISO", 37), ("NEOPIXEL", 33),
         ("NEOPIXEL_POWER", 21), ("I2C_POWER", 7), ("BUTTON", 0), ("BOOT0", 0), ("LED", 13))

for _name, _gpio in _PINS:
    globals()[_name] = Pin(_name, _gpio)
