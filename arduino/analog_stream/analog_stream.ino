// analog_stream: the Arduino half of lab 07-serial-stream.
//
// Reads the voltage on pin A0, scales it to one byte (0-255) and writes that byte to the
// serial port, over and over. At 115200 baud a byte takes about 87 us on the wire; with
// the 1000 us pause and the ~104 us analogRead() the loop runs about 896 times a second.
//
// The bytes are raw binary, not text: the Serial Monitor shows garbage, `lab` and the
// course's Python client (sock.recv(16) into uint8 values) read them as numbers.

const long BAUD = 115200;          // must match `lab run 07 --baud` (its default)
const int PAUSE_US = 1000;         // the course's pause between samples

void setup() {
  Serial.begin(BAUD);
}

void loop() {
  // analogRead gives 10 bits (0-1023); dropping the two lowest bits makes one byte.
  int value = analogRead(A0) >> 2;
  Serial.write((uint8_t)value);
  delayMicroseconds(PAUSE_US);
}
