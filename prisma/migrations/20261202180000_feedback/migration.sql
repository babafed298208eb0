-- CreateTable
CREATE TABLE "Feedback" (
    "predictionId" TEXT NOT NULL PRIMARY KEY,
    "modelName" TEXT NOT NULL,
    "version" INTEGER NOT NULL,
    "predictedAt" DATETIME NOT NULL,
    "servedLabel" TEXT,
    "servedValue" REAL,
    "label" TEXT,
    "value" REAL,
    "absoluteError" REAL,
    "squaredError" REAL,
    "recordedAt" DATETIME NOT NULL,
    "apiKeyId" TEXT,
    "recordedBy" TEXT
);

-- CreateIndex
CREATE INDEX "Feedback_modelName_version_predictedAt_idx" ON "Feedback"("modelName", "version", "predictedAt");
