"""The files of an export directory and the model files serving can run (no TensorFlow).

  bert_model.ckpt.*, bert_config.json, the vocab    the plain n-layer BERT + head
  saved_model/                                      signature SIGNATURE_KEY: INPUT_NAMES ->
                                                    the task's outputs
  model.tflite, model_int8.tflite                   TFLITE_FILES (--export_tflite)
  export_info.json                                  the task, parameters, untrained variables,
                                                    the sha256 of every model file
  the task's own files                              e.g. classifier_task.json
"""

import collections

SIGNATURE_KEY = "serving_default"
INPUT_NAMES = ("input_ids", "input_mask", "segment_ids")
EXPORT_INFO_FILE = "export_info.json"
TASK_FILE_SUFFIX = "_task.json"  # each task's own file, e.g. classifier_task.json
SAVED_MODEL_DIR = "saved_model"
# TFLite files of an export: name -> whether the weights are quantized to int8 (dynamic range).
TFLITE_FILES = collections.OrderedDict([("model.tflite", False), ("model_int8.tflite", True)])

BACKENDS = ("auto", "saved_model", "tflite", "tflite_int8")
BACKEND_FILES = {"saved_model": SAVED_MODEL_DIR, "tflite": "model.tflite",
                 "tflite_int8": "model_int8.tflite"}
