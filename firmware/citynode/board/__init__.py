"""The board: the node's main loop, its hardware layers (hal_esp32 on an
ESP32, hal_sim replaying a recording), deep-sleep state, record mode, the
recording reader and the replay entry point."""
