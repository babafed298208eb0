-- CreateTable
CREATE TABLE "Feedback" (
    "predictionId" TEXT NOT NULL,
    "modelName" TEXT NOT NULL,
    "version" INTEGER NOT NULL,
    "predictedAt" TIMESTAMP(3) NOT NULL,
    "servedLabel" TEXT,
    "servedValue" DOUBLE PRECISION,
    "label" TEXT,
    "value" DOUBLE PRECISION,
    "absoluteError" DOUBLE PRECISION,
    "squaredError" DOUBLE PRECISION,
    "recordedAt" TIMESTAMP(3) NOT NULL,
    "apiKeyId" TEXT,
    "recordedBy" TEXT,

    CONSTRAINT "Feedback_pkey" PRIMARY KEY ("predictionId")
);

-- CreateIndex
CREATE INDEX "Feedback_modelName_version_predictedAt_idx" ON "Feedback"("modelName", "version", "predictedAt");
